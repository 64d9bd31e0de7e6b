"""Quality metrics: hand-computed values, one formula check per metric, and the offline evaluate module."""

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

import unifilter_hf
from unifilter_hf.levels import levels_of
from unifilter_hf.quality_metrics import (
    average_ranks,
    compute_quality_metrics,
    macro_f1,
    pairwise_ranking,
    spearman,
)

# Two groups (the four levels of two sources), one caption and one document.
SCORES = [0.1, 0.9, 2.2, 2.6, -0.5, 1.4, 1.6, 3.4]
LABELS = [0, 1, 2, 3, 0, 2, 1, 3]
GROUPS = ["a"] * 4 + ["b"] * 4
KINDS = ["caption"] * 4 + ["document"] * 4


def test_hand_computed_example():
    m = compute_quality_metrics(SCORES, LABELS, kinds=KINDS, group_ids=GROUPS)
    # predictions 0 1 2 3 | 0 1 2 3 against labels 0 1 2 3 | 0 2 1 3: the middle two of group b are swapped.
    assert m["accuracy"] == 0.75
    assert m["confusion_matrix"] == [[2, 0, 0, 0], [0, 1, 1, 0], [0, 1, 1, 0], [0, 0, 0, 2]]
    assert m["macro_f1"] == pytest.approx((1 + 0.5 + 0.5 + 1) / 4)
    # Score ranks 2 3 6 7 1 4 5 8, label ranks 1.5 3.5 5.5 7.5 1.5 5.5 3.5 7.5: rho = 38 / sqrt(42 * 40).
    assert m["spearman"] == pytest.approx(38 / math.sqrt(42 * 40))
    assert m["mean_score_per_level"] == pytest.approx([-0.2, 1.25, 1.8, 3.0])
    # Group a ranks all 6 pairs right; group b gets 1.4 (level 2) below 1.6 (level 1) wrong.
    assert m["pairwise_pairs"] == 12 and m["pairwise_accuracy"] == pytest.approx(11 / 12)
    assert m["num_examples"] == 8 and m["num_invalid"] == 0
    cap, doc = m["per_kind"]["caption"], m["per_kind"]["document"]
    assert (cap["accuracy"], cap["spearman"], cap["pairwise_accuracy"], cap["pairwise_pairs"]) == (1.0, 1.0, 1.0, 6)
    assert doc["accuracy"] == 0.5 and doc["pairwise_accuracy"] == pytest.approx(5 / 6)
    assert doc["confusion_matrix"] == [[1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]]
    json.dumps(m, allow_nan=False)  # JSON-serialisable, no NaN


def test_accuracy_rounds_half_up_after_clamping():
    assert levels_of([-1.0, 0.49, 0.5, 1.5, 2.5, 2.51, 9.0]).tolist() == [0, 0, 1, 2, 3, 3, 3]
    m = compute_quality_metrics([0.5, 2.5, -3.0, 4.0], [1, 3, 0, 3])
    assert m["accuracy"] == 1.0  # np.rint (half to even) would give 0 and 2, without the clamp -3 and 4


def test_confusion_matrix_rows_are_true_levels():
    m = compute_quality_metrics([3.0, 3.0, 1.0], [0, 0, 2])
    assert m["confusion_matrix"][0] == [0, 0, 0, 2] and m["confusion_matrix"][2] == [0, 1, 0, 0]
    assert m["confusion_matrix"][3] == [0, 0, 0, 0]


def test_macro_f1_averages_present_levels_unweighted():
    # level 0: P=1, R=1/2 -> F1 2/3; level 1: P=2/3, R=1 -> F1 4/5; levels 2 and 3 absent -> not averaged.
    m = compute_quality_metrics([0.0, 1.0, 1.0, 1.0], [0, 0, 1, 1])
    assert m["macro_f1"] == pytest.approx((2 / 3 + 4 / 5) / 2)
    # A level that is predicted but never true counts with F1 = 0.
    assert macro_f1(np.array([[1, 0, 0, 1], [0] * 4, [0] * 4, [0] * 4])) == pytest.approx((2 / 3 + 0) / 2)


def test_spearman_uses_average_ranks_for_ties():
    assert average_ranks(np.array([5.0, 1.0, 5.0, 5.0])).tolist() == [3.0, 1.0, 3.0, 3.0]
    # x ranks 1, 2.5, 2.5, 4 against 1, 2, 3, 4: 4.5 / sqrt(4.5 * 5); ordinal ranks would give 1.0.
    assert spearman([1.0, 2.0, 2.0, 3.0], [1, 2, 3, 4]) == pytest.approx(4.5 / math.sqrt(4.5 * 5))
    assert spearman([3.0, 2.0, 1.0], [0, 1, 2]) == pytest.approx(-1.0)
    assert spearman([1.0, 1.0], [0, 3]) is None  # constant scores: undefined, not NaN


def test_mean_score_per_level_and_missing_levels():
    m = compute_quality_metrics([0.0, 0.3, 1.5, 2.5], [0, 0, 0, 3])
    assert m["mean_score_per_level"] == pytest.approx([0.6, None, None, 2.5])  # a mean, not a median (0.3)


def test_pairwise_accuracy_within_groups_with_ties_as_half():
    # Rows of equal level and rows of different groups make no pair.
    scores = np.array([1.0, 1.0, 2.0, 0.0, 5.0, 5.0])
    labels = np.array([3, 2, 0, 0, 3, 0])
    acc, pairs = pairwise_ranking(scores, labels, ["x", "x", "x", "x", "y", "y"])
    # x: (3,2) tie 1/2, (3, 0@2.0) wrong, (3, 0@0.0) right, (2, 0@2.0) wrong, (2, 0@0.0) right; y: a tie, 1/2
    assert pairs == 6 and acc == pytest.approx((0.5 + 0 + 1 + 0 + 1 + 0.5) / 6)
    assert pairwise_ranking(np.array([1.0, 2.0]), np.array([3, 0]), ["p", "q"]) == (None, 0)


def test_invalid_scores_are_left_out_and_counted():
    m = compute_quality_metrics([float("nan"), 3.0, 0.0], [0, 3, 0], kinds=["caption", "caption", "document"])
    assert m["num_invalid"] == 1 and m["num_examples"] == 2 and m["accuracy"] == 1.0
    assert m["per_kind"]["caption"]["num_invalid"] == 1 and m["per_kind"]["document"]["num_examples"] == 1
    with pytest.raises(ValueError):
        compute_quality_metrics([1.0], [4])
    with pytest.raises(ValueError):
        compute_quality_metrics([1.0, 2.0], [1])


def test_evaluate_module_loads_offline_and_matches(monkeypatch):
    import evaluate

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert isinstance(unifilter_hf.metrics_path, str)
    assert (Path(unifilter_hf.metrics_path) / "unifilter_quality.py").is_file()
    metric = evaluate.load(unifilter_hf.metrics_path)
    got = metric.compute(predictions=SCORES, references=LABELS, kinds=KINDS, group_ids=GROUPS)
    want = compute_quality_metrics(np.float32(SCORES), LABELS, kinds=KINDS, group_ids=GROUPS)
    assert got == want
    assert got["accuracy"] == 0.75 and got["pairwise_accuracy"] == pytest.approx(11 / 12)
    # Incremental use: batches are accumulated, optional columns go to compute.
    for start in (0, 4):
        metric.add_batch(predictions=SCORES[start:start + 4], references=LABELS[start:start + 4])
    assert metric.compute(group_ids=GROUPS)["pairwise_pairs"] == 12
    assert "per_kind" not in metric.compute(predictions=SCORES, references=LABELS)


def test_metric_module_is_packaged():
    from setuptools import find_namespace_packages

    root = Path(unifilter_hf.__file__).parent.parent
    packages = find_namespace_packages(where=str(root), include=["unifilter_hf*"])
    assert "unifilter_hf.metrics.unifilter_quality" in packages
    # evaluate's scanner reads imports line by line: one import per line in the module.
    source = (Path(unifilter_hf.metrics_path) / "unifilter_quality.py").read_text()
    assert not re.findall(r"^(?:import|from)\s[^\n]*,", source, flags=re.MULTILINE)
