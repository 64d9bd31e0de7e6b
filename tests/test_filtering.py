"""ds.map(unifilter_score) / ds.filter(unifilter_keep) on real photographs with bad rows mixed in."""

import json
import logging
import math
import os
import subprocess
import sys
import textwrap

import datasets
import pytest
from transformers import pipeline

from tests.badrows import bad_rows, good_rows, image_dict, jpeg
from tests.kit import TASK, SlowImages, caption_rows, slow_image_server
from unifilter_hf import filtering, undecode_images
from unifilter_hf.cli import main
from unifilter_hf.filtering import model_fingerprint, unifilter_keep, unifilter_score
from unifilter_hf.row_layouts import SchemaError
from unifilter_hf.scoring import QualityScorer

datasets.disable_progress_bars()


def _dataset(cases, schema):
    rows, kinds = [], []
    for case in cases:
        if case.schema != schema or not case.arrow:
            continue
        row = {k: v for k, v in case.row.items() if k in ("image", "text", "images", "texts")}
        if schema == "caption" and (set(row) != {"image", "text"} or not isinstance(row["text"], (str, type(None)))):
            continue
        if schema == "caption" and not (row["image"] is None or isinstance(row["image"], dict)):
            continue
        if schema == "document" and not all(isinstance(row.get(k), list) for k in ("texts", "images")):
            continue  # one Arrow schema per dataset: such rows only come from Python callers
        rows.append(row)
        kinds.append(case)
    # Hub-style columns; decode=False hands raw bytes/paths to unifilter, which decodes robustly.
    image = datasets.Image(decode=False)
    if schema == "caption":
        features = datasets.Features({"image": image, "text": datasets.Value("string")})
    else:
        features = datasets.Features({"texts": datasets.List(datasets.Value("string")), "images": datasets.List(image)})
    return datasets.Dataset.from_list(rows, features=features), kinds


@pytest.fixture(autouse=True)
def _opt_ins(monkeypatch, tmp_path_factory):
    """The bad rows name files in pytest's temp folder and a closed port on loopback: the opt-ins name both."""
    monkeypatch.setenv("UNIFILTER_ALLOW_LOCAL_FILES", str(tmp_path_factory.getbasetemp()))
    monkeypatch.setenv("UNIFILTER_ALLOW_PRIVATE_URLS", "127.0.0.0/8")


@pytest.fixture(scope="module")
def fixture_sets(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rows")
    cases = bad_rows(tmp) + good_rows(tmp)
    captions, caption_cases = _dataset(cases, "caption")
    docs, doc_cases = _dataset(cases, "document")
    assert sum(c.expect == "error" for c in caption_cases + doc_cases) >= 15
    return [(captions, caption_cases), (docs, doc_cases)]


@pytest.mark.parametrize("batch_size", [None, 3, 8])
def test_map_keeps_every_row_and_matches_the_pipeline(fixture_sets, model_dir, batch_size):
    pipe = pipeline("multimodal-quality-scoring", model=str(model_dir), device="cpu")
    scorer = unifilter_score(model=str(model_dir), batch_size=4)
    for ds, cases in fixture_sets:
        kwargs = {"batched": True, "batch_size": batch_size} if batch_size else {}
        out = ds.map(scorer, **kwargs)
        assert len(out) == len(ds) == len(cases)
        expected = pipe([c.row for c in cases])
        for case, row, ref in zip(cases, out, expected):
            if case.expect == "error":
                assert math.isnan(row["unifilter_score"]) and case.reason in row["unifilter_error"], case.kind
                assert row["unifilter_level"] == -1
            else:
                assert row["unifilter_error"] == "", (case.kind, row["unifilter_error"])
                assert row["unifilter_level"] == ref["level"]
                assert math.isfinite(row["unifilter_score"])
                assert row["unifilter_score"] == pytest.approx(ref["score"], abs=1e-5), case.kind


def test_filter_as_written_equals_batched_factory(fixture_sets, default_model, caplog):
    ds, cases = fixture_sets[0]
    with caplog.at_level(logging.WARNING, logger="unifilter_hf.filtering"):
        plain = ds.filter(unifilter_keep)
    batched = ds.filter(unifilter_keep(model=str(default_model), threshold=2.0), batched=True, batch_size=8)
    scored = ds.map(unifilter_score, batched=True)
    expected = [s >= 2.0 for s in scored["unifilter_score"]]  # NaN compares False: error rows are dropped
    assert 0 < sum(expected) < len(ds)
    assert plain["text"] == batched["text"] == [t for t, keep in zip(ds["text"], expected) if keep]
    assert "could not be scored" in caplog.text
    # keeping error rows is one switch
    with_errors = ds.filter(unifilter_keep(keep_errors=True), batched=True)
    n_errors = sum(c.expect == "error" for c in cases)
    assert len(with_errors) == len(plain) + n_errors


def test_documents_filter_and_threshold_factory(fixture_sets, default_model):
    ds, _ = fixture_sets[1]
    low = ds.filter(unifilter_keep(threshold=-100.0), batched=True, batch_size=4)
    scored = ds.map(unifilter_score)
    assert len(low) == sum(e == "" for e in scored["unifilter_error"]) > 0


def test_streaming_gives_the_same_scores(fixture_sets, default_model):
    for ds, _ in fixture_sets:
        in_memory = ds.map(unifilter_score, batched=True, batch_size=4)["unifilter_score"]
        stream = ds.to_iterable_dataset(num_shards=2).map(unifilter_score, batched=True, batch_size=4)
        streamed = [r["unifilter_score"] for r in stream]
        assert len(streamed) == len(in_memory)
        for a, b in zip(in_memory, streamed):
            assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=1e-6)
        kept = list(ds.to_iterable_dataset().filter(unifilter_keep))
        assert len(kept) == len(ds.filter(unifilter_keep, batched=True))


def test_cache_is_reused_only_for_the_same_model_and_settings(fixture_sets, model_dir, tmp_path, monkeypatch):
    ds, cases = fixture_sets[0]
    # (datasets' size estimate stats image paths and URLs, so keep the rows that hold bytes)
    keep = [i for i, c in enumerate(cases) if not (c.row["image"] or {}).get("path")]
    ds = ds.select(keep).flatten_indices()
    ds.to_parquet(tmp_path / "rows.parquet")  # a file-backed dataset, as loaded from the Hub: cacheable
    ds = datasets.Dataset.from_parquet(str(tmp_path / "rows.parquet"), cache_dir=str(tmp_path / "cache"))
    calls = []
    real = QualityScorer.score_rows
    monkeypatch.setattr(QualityScorer, "score_rows", lambda self, *a, **k: calls.append(1) or real(self, *a, **k))

    first = ds.map(unifilter_score(model=str(model_dir)), batched=True)
    n = len(calls)
    again = ds.map(unifilter_score(model=str(model_dir)), batched=True)  # a new object, same identity
    assert len(calls) == n and again._fingerprint == first._fingerprint
    assert again.cache_files == first.cache_files

    kept_2 = ds.filter(unifilter_keep(model=str(model_dir), threshold=2.0), batched=True)
    kept_1 = ds.filter(unifilter_keep(model=str(model_dir), threshold=1.0), batched=True)
    assert kept_2._fingerprint != kept_1._fingerprint and len(kept_1) > len(kept_2)

    # changed weights in the folder: a new fingerprint, a real recomputation
    from unifilter_hf import UniFilterForQualityScoring

    model = UniFilterForQualityScoring.from_pretrained(model_dir)
    model.score.weight.data.mul_(-1)
    changed = tmp_path / "changed"
    model.save_pretrained(changed)
    (changed / "processor_config.json").write_bytes((model_dir / "processor_config.json").read_bytes())
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (changed / name).write_bytes((model_dir / name).read_bytes())
    n = len(calls)
    flipped = ds.map(unifilter_score(model=str(changed)), batched=True)
    assert len(calls) > n and flipped._fingerprint != first._fingerprint
    for a, b in zip(first["unifilter_score"], flipped["unifilter_score"]):
        assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(-b, abs=1e-5)


def test_in_memory_models_fingerprint_by_content(model_dir):
    from unifilter_hf import UniFilterForQualityScoring

    model = UniFilterForQualityScoring.from_pretrained(model_dir)
    before = model_fingerprint(model)
    assert model_fingerprint(UniFilterForQualityScoring.from_pretrained(model_dir)) == before
    model.score.weight.data.add_(0.01)
    assert model_fingerprint(model) != before


def test_folder_fingerprint_never_reads_tensors(model_dir, tmp_path):
    # Keep only the safetensors header: any attempt to read tensor data would fail.
    folder = tmp_path / "header-only"
    folder.mkdir()
    data = (model_dir / "model.safetensors").read_bytes()
    header = 8 + int.from_bytes(data[:8], "little")
    (folder / "model.safetensors").write_bytes(data[:header])
    (folder / "config.json").write_bytes((model_dir / "config.json").read_bytes())
    first = model_fingerprint(str(folder))
    assert first == model_fingerprint(str(folder))
    (folder / "config.json").write_text((model_dir / "config.json").read_text().replace("320", "321"))
    assert model_fingerprint(str(folder)) != first


def test_fingerprint_of_a_100m_parameter_model_samples_large_tensors():
    import torch
    from transformers import Qwen2Config, SiglipVisionConfig

    from unifilter_hf import UniFilterConfig, UniFilterForQualityScoring

    config = UniFilterConfig(
        vision_config=SiglipVisionConfig(
            hidden_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            image_size=28,
            patch_size=14,
        ),
        text_config=Qwen2Config(
            hidden_size=768,
            intermediate_size=2048,
            num_hidden_layers=12,
            num_attention_heads=12,
            num_key_value_heads=4,
            vocab_size=32000,
        ),
        num_image_tokens=4,
    )
    model = UniFilterForQualityScoring(config)
    assert sum(p.numel() for p in model.parameters()) > 100_000_000
    before = model_fingerprint(model)
    # Count the work instead of timing it: a value at an unsampled position of a large tensor is never read.
    embed = model.get_input_embeddings().weight
    with torch.no_grad():
        embed[1, 1] += 1.0
        assert model_fingerprint(model) == before
        model.score.weight[0, 0] += 1.0  # small tensors are hashed whole
        assert model_fingerprint(model) != before


def test_spec_pickles_light(model_dir):
    import pickle

    scorer = unifilter_score(model=str(model_dir))
    scorer.scorer  # noqa: B018 - load the model
    payload = pickle.dumps(scorer)
    assert len(payload) < 10_000  # the weights never travel
    assert pickle.loads(payload) is scorer  # same process: the live object, model already loaded
    assert filtering.UniFilterKeep().spec()["settings"]["threshold"] == 2.0


def test_document_longer_than_the_context_is_truncated_not_failed(default_model):
    from tests.badrows import image_dict, jpeg
    from unifilter_hf import UniFilterProcessor

    assert UniFilterProcessor.from_pretrained(default_model).max_length == 512
    paragraph = "We walked along the river and talked about the history of the old town. " * 3
    names = ["coffee", "china", "rocket", "flower", "chelsea", "astronaut"] * 6  # 36 images x 16 tokens > 512
    texts, images = [], []
    for name in names:
        texts += [paragraph, None]
        images += [None, image_dict(jpeg(name))]
    ds = datasets.Dataset.from_list([{"texts": texts, "images": images}])
    row = ds.map(unifilter_score, batched=True)[0]
    assert row["unifilter_error"] == "" and math.isfinite(row["unifilter_score"])
    expected = pipeline("multimodal-quality-scoring", device="cpu")({"texts": texts, "images": images})
    assert row["unifilter_score"] == pytest.approx(expected["score"], abs=1e-5)


def test_hub_id_fingerprint_follows_the_cached_snapshot(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    repo = tmp_path / "models--org--scorer"
    assert model_fingerprint("org/scorer") == model_fingerprint("org/scorer")  # not cached: the id alone
    uncached = model_fingerprint("org/scorer")
    fingerprints = []
    for commit in ("a" * 40, "b" * 40):
        (repo / "snapshots" / commit).mkdir(parents=True)
        (repo / "snapshots" / commit / "config.json").write_text("{}")
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / "main").write_text(commit)
        fingerprints.append(model_fingerprint("org/scorer"))
    assert len({uncached, *fingerprints}) == 3


def test_num_proc_works_after_torch_ran_in_the_parent(model_dir, tmp_path):
    # Before the fix the forked workers waited forever on torch's dead OpenMP pool: the timeout catches it.
    script = textwrap.dedent(f"""
        import datasets, json, torch
        from tests.badrows import image_dict, jpeg
        from unifilter_hf.filtering import unifilter_keep, unifilter_score
        datasets.disable_progress_bars()
        torch.set_num_threads(2)
        rows = [{{"image": image_dict(jpeg(n)), "text": "A photo."}} for n in ("coffee", "rocket", "flower", "china")]
        ds = datasets.Dataset.from_list(rows)
        score = unifilter_score(model={str(model_dir)!r})
        warm = list(ds.map(score, batched=True)["unifilter_score"])  # torch runs in the parent first
        out = {{}}
        for batched in (True, False):
            mapped = ds.map(score, batched=batched, num_proc=2, load_from_cache_file=False)
            out[f"map{{batched}}"] = list(mapped["unifilter_score"])
            keep = unifilter_keep(model={str(model_dir)!r}, threshold=-100.0)
            out[f"filter{{batched}}"] = len(ds.filter(keep, batched=batched, num_proc=2, load_from_cache_file=False))
        print(json.dumps({{"warm": warm, **out}}))
    """)
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_CACHE=str(tmp_path / "cache"))
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=240,
                         cwd=os.path.dirname(os.path.dirname(__file__)))
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    for batched in ("True", "False"):
        assert result[f"map{batched}"] == pytest.approx(result["warm"], abs=1e-6)
        assert result[f"filter{batched}"] == 4


def test_decoded_image_column_fails_inside_datasets_and_undecode_images_survives(hub_style_parquet, default_model):
    ds = datasets.Dataset.from_parquet(str(hub_style_parquet))
    assert ds.features["image"].decode  # the Hub default
    with pytest.raises(Exception):  # noqa: B017 - PIL's error, raised inside datasets' own decoding
        ds.map(unifilter_score, batched=True)
    raw = undecode_images(ds)
    scored = raw.map(unifilter_score, batched=True)
    errors = scored["unifilter_error"]
    assert [bool(e) for e in errors] == [False, False, False, True] and errors[3].startswith("image:")
    assert len(raw.filter(unifilter_keep(threshold=-100.0), batched=True)) == 3
    streamed = list(undecode_images(ds.to_iterable_dataset()).map(unifilter_score, batched=True))
    assert [bool(r["unifilter_error"]) for r in streamed] == [False, False, False, True]


def test_map_then_filter_scores_each_row_once(default_model, count_scored, tmp_path):
    ds = datasets.Dataset.from_list(caption_rows(6))
    scored = ds.map(unifilter_score, batched=True)
    assert sum(count_scored) == 6
    kept = scored.filter(unifilter_keep(threshold=1.0), batched=True)
    unbatched = scored.filter(unifilter_keep(threshold=1.0))
    assert sum(count_scored) == 6  # decided from the score columns
    expected = sum(s >= 1.0 for s in scored["unifilter_score"])
    assert len(kept) == len(unbatched) == expected
    # columns from another model or settings are not trusted: that filter scores the rows itself
    scored.filter(unifilter_keep(threshold=1.0, max_images=3), batched=True)
    assert sum(count_scored) == 12

    count_scored.clear()
    ds.to_parquet(tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    assert main(["score", str(tmp_path / "in.parquet"), "--output", str(out), "--threshold", "1.0"]) == 0
    assert sum(count_scored) == 6 and len(datasets.Dataset.from_parquet(str(out))) == expected


def test_settings_are_honoured_or_refused(default_model, count_scored):
    pipe = pipeline(TASK, device="cpu")
    row = caption_rows(1)[0]
    for bad in ({"treshold": 2.0}, {"top_k": 3}):
        with pytest.raises(TypeError, match="unknown parameter"):
            pipe(row, **bad)
    assert pipe([]) == []
    ds = datasets.Dataset.from_list(caption_rows(3))
    from_dataset = list(pipe(ds))
    assert [r["score"] for r in from_dataset] == pytest.approx([r["score"] for r in pipe(list(ds))], abs=1e-6)

    low = ds.filter(unifilter_keep, fn_kwargs={"threshold": -100.0}, batched=True)
    high = ds.filter(unifilter_keep, fn_kwargs={"threshold": 100.0})
    assert (len(low), len(high)) == (3, 0)
    with pytest.raises(TypeError, match="unknown UniFilter setting"):
        ds.filter(unifilter_keep, fn_kwargs={"treshold": 1.0}, batched=True)
    # settings that change how rows are read reach the scorer too, not only the threshold
    lost_all = datasets.Dataset.from_list([{"texts": ["Intro.", None], "images": [None, "no/such/file.jpg"]}])
    strict = lost_all.map(unifilter_score, batched=True)["unifilter_error"][0]
    lenient = lost_all.map(unifilter_score, fn_kwargs={"on_image_error": "score_rest"}, batched=True)
    assert strict.startswith("document: all images failed") and lenient["unifilter_error"][0] == ""
    assert lenient["unifilter_images_dropped"][0] == 1

    before = sum(count_scored)
    for batched in (True, False):
        with pytest.raises(SchemaError, match=r"\['URL'\] are not in the dataset"):
            ds.map(unifilter_score(columns={"image": "URL", "text": "text"}), batched=batched)
    assert sum(count_scored) == before  # refused before any row was read


@pytest.fixture
def slow_server(tmp_path, monkeypatch):
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "coffee.jpg").write_bytes(jpeg("coffee"))
    with slow_image_server(tmp_path) as url:
        yield url


def test_image_urls_of_a_batch_are_fetched_concurrently(default_model, slow_server):
    rows = [{"image": f"{slow_server}/coffee.jpg", "text": f"A cup of coffee {i}."} for i in range(8)]
    scored = datasets.Dataset.from_list(rows).map(unifilter_score, batched=True, batch_size=8)
    assert all(e == "" for e in scored["unifilter_error"])
    assert SlowImages.max_inflight >= 4  # one at a time before


def test_batch_size_and_threshold_do_not_recompute_the_map(model_dir, tmp_path, count_scored, caplog):
    datasets.Dataset.from_list(caption_rows(4)).to_parquet(tmp_path / "rows.parquet")
    ds = datasets.Dataset.from_parquet(str(tmp_path / "rows.parquet"), cache_dir=str(tmp_path / "cache"))
    first = ds.map(unifilter_score(model=str(model_dir)), batched=True)
    n = sum(count_scored)
    for options in ({"batch_size": 2}, {"threshold": 0.5}):
        again = ds.map(unifilter_score(model=str(model_dir), **options), batched=True)
        assert again._fingerprint == first._fingerprint and sum(count_scored) == n, options

    bad = datasets.Dataset.from_list([{"image": image_dict(b"junk"), "text": f"bad {i}"} for i in range(5)])
    with caplog.at_level(logging.WARNING, logger="unifilter_hf"):
        assert len(bad.filter(unifilter_keep(model=str(model_dir)))) == 0
    assert sum("could not be scored" in r.getMessage() for r in caplog.records) == 1


def test_decoded_image_columns_get_a_hint_naming_undecode_images(model_dir, monkeypatch, caplog):
    """`datasets` decodes an Image() column before our callable sees it (a corrupt file then stops the job inside
    `datasets`); the callable says so once and names the fix, without patching `datasets`."""
    from tests.badrows import image_dict, jpeg

    monkeypatch.setattr(filtering, "_HINTED_DECODED", False)
    features = datasets.Features({"image": datasets.Image(), "text": datasets.Value("string")})
    rows = [{"image": image_dict(jpeg(n)), "text": "A photo."} for n in ("coffee", "rocket")]
    decoded = datasets.Dataset.from_list(rows, features=features)
    score = unifilter_score(model=str(model_dir))
    with caplog.at_level(logging.WARNING, logger="unifilter_hf.filtering"):
        scored = decoded.map(score, batched=True)
        decoded.map(score, batched=True, load_from_cache_file=False)
    hints = [r for r in caplog.records if "undecode_images" in r.getMessage()]
    assert len(hints) == 1 and all(not e for e in scored["unifilter_error"])
    caplog.clear()
    monkeypatch.setattr(filtering, "_HINTED_DECODED", False)
    with caplog.at_level(logging.WARNING, logger="unifilter_hf.filtering"):
        undecode_images(decoded).map(score, batched=True)  # raw bytes: nothing to say
    assert not [r for r in caplog.records if "undecode_images" in r.getMessage()]
