"""The 0..3 level scale: one score -> level rule (half up, clamped), used alike by every reader of a score."""

import math

import numpy as np
import pyarrow as pa
import pytest
import torch
from torch import nn
from transformers import pipeline

from tests.kit import photo, tiny_model_and_processor
from unifilter_hf import LEVEL_NAMES, Sample
from unifilter_hf.levels import NO_LEVEL, NUM_LEVELS, is_regression, level_of, levels_of
from unifilter_hf.quality_metrics import compute_quality_metrics
from unifilter_hf.report.run_data import KindStats, band_of
from unifilter_hf.scoring import QualityScorer, records_from_logits

# score -> level at every boundary, below, above and outside the scale.
CASES = [(-5.0, 0), (-0.5, 0), (0.0, 0), (0.49, 0), (0.5, 1), (1.49, 1), (1.5, 2), (2.49, 2), (2.5, 3), (3.0, 3),
         (3.7, 3), (math.inf, 3), (-math.inf, 0)]


@pytest.mark.parametrize(("score", "level"), CASES)
def test_half_up_and_clamped(score, level):
    assert level_of(score) == level
    assert levels_of([score]).tolist() == [level]


def test_nan_has_no_level():
    assert level_of(math.nan) is None
    assert levels_of([0.5, math.nan, 2.5]).tolist() == [1, NO_LEVEL, 3]


def test_names_and_regression_check():
    assert list(LEVEL_NAMES) == ["easy_negative", "medium_negative", "hard_negative", "positive"]
    assert NUM_LEVELS == 4
    model, _ = tiny_model_and_processor(num_labels=1)
    assert is_regression(1) and is_regression(model.config) and model.config.is_regression
    assert not is_regression(4) and not is_regression(tiny_model_and_processor(num_labels=4)[0].config)


def _model_scoring(value: float):
    """A tiny regression model whose head outputs ``value`` for every row (a zero weight and a bias)."""
    model, processor = tiny_model_and_processor(num_labels=1, seed=3)
    head = nn.Linear(model.score.in_features, 1, bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(value)
    model.score = head
    return model.eval(), processor


def test_every_reader_gives_two_and_a_half_level_three():
    """Pipeline output, the scorer (datasets callables, score, curate), the metrics and the report agree."""
    model, processor = _model_scoring(2.5)
    pipe = pipeline("multimodal-quality-scoring", model=model, processor=processor, device="cpu")
    out = pipe({"image": photo("coffee", 64), "text": "A cup of coffee."})
    assert out["score"] == 2.5 and out["level"] == 3
    record = QualityScorer(model, processor).score_samples([Sample.caption(photo("coffee", 64), "A cup.")])[0]
    assert record.score == 2.5 and record.level == 3
    assert records_from_logits(torch.tensor([[2.5]]), torch.tensor([2.5]))[0].level == 3
    assert compute_quality_metrics([2.5], [3])["accuracy"] == 1.0
    assert band_of(2.5) == 3
    stats = KindStats()
    stats.add("shard-0", pa.table({"index": [0], "key": ["row-0"]}), np.array([0]), np.array([2.5]), np.array([True]))
    assert stats.bands == [0, 0, 0, 1] and stats.kept_bands == [0, 0, 0, 1]
