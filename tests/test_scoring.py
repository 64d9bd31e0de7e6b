"""The scorer's batch path (``QualityScorer.score_rows`` / ``score_samples``, ``batch_plan``, ``records_from_logits``).

Everything goes through the public methods: results come back in input order whatever the micro-batching,
a bad row or a row that fails in the model costs only that row, and concurrent reading keeps the order.
"""

from __future__ import annotations

import math
import random
from urllib.parse import parse_qs, urlparse

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoProcessor

from tests.badrows import image_dict, jpeg, truncated_jpeg
from tests.kit import SlowImages, slow_image_server
from unifilter_hf.scoring import QualityScorer, batch_plan, records_from_logits

NAMES = ["coffee", "rocket", "flower", "chelsea", "china", "astronaut"]


@pytest.fixture(scope="module")
def loaded(model_dir):
    """The tiny fitted model and its processor, loaded once; each test builds scorers around them."""
    return AutoModelForSequenceClassification.from_pretrained(model_dir), AutoProcessor.from_pretrained(model_dir)


def _scorer(loaded, **options) -> QualityScorer:
    return QualityScorer(*loaded, device="cpu", **options)


def _mixed_rows() -> list[dict]:
    """Captions of very different lengths and documents of one to three images, interleaved."""
    rows = []
    for i, name in enumerate(NAMES):
        rows.append({"image": image_dict(jpeg(name)), "text": "A photograph. " * (1 + 6 * (i % 3))})
        images = [image_dict(jpeg(NAMES[(i + k) % 6])) for k in range(1 + i % 3)]
        texts = [f"Paragraph {k} about the pictures of this page." for k in range(len(images))]
        rows.append({"texts": [t for pair in zip(texts, [None] * len(images)) for t in pair],
                     "images": [m for pair in zip([None] * len(images), images) for m in pair]})
    return rows


def _scores(records) -> list[float]:
    return [r.score for r in records]


# ------------------------------------------------------------------------------------------ batch_plan


def test_batch_plan_covers_every_row_once_shortest_first_within_the_limits():
    rng = random.Random(0)
    lengths = [rng.choice([20, 40, 300, 1200]) + rng.randrange(10) for _ in range(57)]
    for batch_size in (1, 3, 8):
        for max_padding in (None, 0.1, 0.5):
            plan = batch_plan(lengths, batch_size, max_padding)
            assert sorted(i for chunk in plan for i in chunk) == list(range(len(lengths)))
            assert all(1 <= len(chunk) <= batch_size for chunk in plan)
            flat = [lengths[i] for chunk in plan for i in chunk]
            assert flat == sorted(lengths)  # shortest first, so neighbours in a batch have similar lengths
            if max_padding is not None:
                for chunk in plan:
                    real = sum(lengths[i] for i in chunk)
                    assert len(chunk) * max(lengths[i] for i in chunk) <= (1 + max_padding) * real
    assert batch_plan([], 4) == []
    # without a padding limit only batch_size cuts; with one, a long row is not padded to short ones
    assert batch_plan([10, 10, 1000], 8) == [[0, 1, 2]]
    assert batch_plan([10, 10, 1000], 8, max_padding=0.1) == [[0, 1], [2]]


# -------------------------------------------------------------------------------- records_from_logits


def test_records_from_logits_levels_and_probs():
    scores = torch.tensor([-1.2, 0.3, 1.2, 2.2, 2.8, 4.0])
    regression = records_from_logits(scores[:, None], scores)
    assert [r.level for r in regression] == [0, 0, 1, 2, 3, 3]  # nearest level, clamped to 0..3
    assert [r.score for r in regression] == pytest.approx(scores.tolist())  # the score itself is not clamped
    assert all(r.probs is None and r.ok for r in regression)  # no calibration: no probabilities

    logits = torch.tensor([[2.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 3.0], [0.0, 1.0, 0.5, 0.0]])
    expected = (logits.softmax(-1) * torch.arange(4.0)).sum(-1)
    classification = records_from_logits(logits, expected)
    assert [r.level for r in classification] == [0, 3, 1]  # the argmax level
    for record, row in zip(classification, logits.softmax(-1)):
        assert record.probs == pytest.approx(row.tolist()) and sum(record.probs) == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------- score_rows


def test_results_in_input_order_and_independent_of_batching(loaded):
    rows = _mixed_rows()
    one_by_one = _scorer(loaded, batch_size=1, max_padding=None).score_rows(rows)
    assert all(r.ok and math.isfinite(r.score) for r in one_by_one)
    assert len({round(s, 4) for s in _scores(one_by_one)}) > len(rows) // 2  # distinct rows, distinct scores
    for batch_size, max_padding in ((8, None), (8, 0.1), (3, 0.5)):
        batched = _scorer(loaded, batch_size=batch_size, max_padding=max_padding).score_rows(rows)
        assert _scores(batched) == pytest.approx(_scores(one_by_one), abs=1e-6), (batch_size, max_padding)
        assert [r.level for r in batched] == [r.level for r in one_by_one]
    reversed_rows = _scorer(loaded, batch_size=8).score_rows(rows[::-1])
    assert _scores(reversed_rows) == pytest.approx(_scores(one_by_one)[::-1], abs=1e-6)


def test_score_samples_matches_score_rows(loaded):
    from unifilter_hf.row_layouts import try_to_sample

    rows = _mixed_rows()
    samples = [try_to_sample(row, None)[0] for row in rows]
    scorer = _scorer(loaded, batch_size=4)
    assert _scores(scorer.score_samples(samples)) == pytest.approx(_scores(scorer.score_rows(rows)), abs=1e-6)
    assert scorer.score_samples([]) == [] and scorer.score_rows([]) == []


def test_a_bad_row_gets_nan_and_a_reason_and_its_neighbours_are_unharmed(loaded):
    rows = _mixed_rows()[:6]
    clean = _scores(_scorer(loaded, batch_size=1).score_rows(rows))
    bad = [{"image": image_dict(truncated_jpeg()[:200]), "text": "A broken photo."},
           {"image": image_dict(jpeg("coffee")), "text": None},
           {"texts": ["Intro.", None], "images": [None, "no/such/file.jpg"]}]
    mixed = rows[:2] + bad[:1] + rows[2:4] + bad[1:] + rows[4:]
    records = _scorer(loaded, batch_size=8).score_rows(mixed)
    failed = [records[2], records[5], records[6]]
    assert all(math.isnan(r.score) and r.error and not r.ok and r.level is None for r in failed)
    assert failed[0].error.startswith("image:") and failed[2].error.startswith("document:")
    good = [r for i, r in enumerate(records) if i not in (2, 5, 6)]
    assert all(r.ok for r in good) and _scores(good) == pytest.approx(clean, abs=1e-6)


def test_a_micro_batch_that_fails_in_the_model_is_retried_row_by_row(loaded, model_dir):
    rows = _mixed_rows()[:6]
    clean = _scores(_scorer(loaded, batch_size=1).score_rows(rows))
    model, processor = loaded
    poison = "Zyzzyva"
    poison_ids = set(processor.tokenizer(poison, add_special_tokens=False)["input_ids"])
    poison_ids -= {i for row in rows for t in (row.get("texts") or [row.get("text")]) if t
                   for i in processor.tokenizer(t, add_special_tokens=False)["input_ids"]}
    assert poison_ids

    class FailsOnOneRow(type(model)):
        """The real model, except that a batch holding the poisoned caption raises (as a CUDA error would)."""

        def forward(self, input_ids=None, **kwargs):
            if any(int(i) in poison_ids for i in input_ids.flatten()):
                raise RuntimeError("device-side assert triggered")
            return super().forward(input_ids=input_ids, **kwargs)

    flaky = FailsOnOneRow.from_pretrained(model_dir)
    mixed = rows[:3] + [{"image": image_dict(jpeg("rocket")), "text": f"A {poison} rocket."}] + rows[3:]
    records = QualityScorer(flaky, processor, device="cpu", batch_size=8, max_padding=None).score_rows(mixed)
    assert math.isnan(records[3].score) and records[3].error.startswith("model: RuntimeError")
    others = records[:3] + records[4:]
    assert all(r.ok for r in others) and _scores(others) == pytest.approx(clean, abs=1e-6)


class _Staggered(SlowImages):
    """Each request waits the ``d`` seconds its query asks for: early rows answer last."""

    @property
    def delay(self) -> float:
        return float(parse_qs(urlparse(self.path).query)["d"][0])


def test_concurrent_reading_keeps_the_order(loaded, tmp_path, monkeypatch):
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("UNIFILTER_ALLOW_PRIVATE_URLS", "127.0.0.0/8")  # the photo server is on loopback
    for name in NAMES:
        (tmp_path / f"{name}.jpg").write_bytes(jpeg(name))
    local = [{"image": image_dict(jpeg(name)), "text": f"Photo {i}: {name}."} for i, name in enumerate(NAMES * 2)]
    expected = _scores(_scorer(loaded, batch_size=4, read_workers=1).score_rows(local))
    with slow_image_server(tmp_path, _Staggered) as url:
        remote = [{"image": f"{url}/{name}.jpg?d={0.05 * (len(local) - i):.2f}", "text": row["text"]}
                  for i, (name, row) in enumerate(zip(NAMES * 2, local))]
        records = _scorer(loaded, batch_size=4, read_workers=8).score_rows(remote)
    assert _Staggered.max_inflight >= 4  # read at once, finished in reverse order
    assert all(r.ok for r in records), [r.error for r in records]
    assert _scores(records) == pytest.approx(expected, abs=1e-6)
