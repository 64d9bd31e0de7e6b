"""`pipeline("multimodal-quality-scoring", model=<official checkpoint>)` gives the official scores."""

from __future__ import annotations

import pytest
from transformers import pipeline

from tests.test_convert_official import (  # noqa: F401  (hub_cache is a fixture)
    FIXTURE,
    HUB_ID,
    copy_tree,
    fixture_cases,
    hub_cache,
)
from tests.test_official_direct_load import _require_official_routing  # noqa: F401  (autouse fixture)
from unifilter_hf import UniFilterForQualityScoring
from unifilter_hf.official import convert_official_checkpoint

TASK = "multimodal-quality-scoring"


def _inputs() -> list[dict]:
    """The fixture cases as pipeline inputs: captions {"image", "text"}, documents {"images", "texts"}."""
    out = []
    for case in fixture_cases()[0]:
        if case["kind"] == "caption":
            out.append({"image": case["image"], "text": case["text"]})
        else:
            out.append({"images": case["images"], "texts": case["texts"]})
    return out


def _scores(scorer, batch_size: int = 1) -> list[float]:
    results = scorer(_inputs(), batch_size=batch_size)
    assert all(r.get("error") is None for r in results)
    return [r["score"] for r in results]


def test_pipeline_on_an_official_folder_matches_the_converted_folder(tmp_path):
    official = copy_tree(FIXTURE / "checkpoint", tmp_path / "official")
    native = convert_official_checkpoint(official, tmp_path / "native")
    _, expected = fixture_cases()
    from_native = _scores(pipeline(TASK, model=str(native)))
    scorer = pipeline(TASK, model=str(official))
    assert type(scorer.model) is UniFilterForQualityScoring
    for batch_size in (1, 3):
        got = _scores(scorer, batch_size)
        assert got == pytest.approx(from_native, abs=1e-6)
        assert got == pytest.approx(expected, abs=1e-4)
    single = scorer(_inputs()[0])
    assert single["score"] == pytest.approx(expected[0], abs=1e-4)


@pytest.mark.usefixtures("hub_cache")
def test_pipeline_by_hub_id():
    _, expected = fixture_cases()
    scorer = pipeline(TASK, model=HUB_ID)
    assert _scores(scorer, batch_size=2) == pytest.approx(expected, abs=1e-4)
