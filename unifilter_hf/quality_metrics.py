"""Quality-scoring metrics on the 0..3 level scale, in numpy (no scipy, no scikit-learn).

One implementation serves the training loop's ``compute_metrics``, the ``evaluate`` metric module shipped in
the package (:data:`metrics_path`) and users' own evaluations.

- ``accuracy``: the score's level (:func:`unifilter_hf.levels.levels_of`: the nearest level, half up,
  clamped to 0..3) equals the label.
- ``confusion_matrix``: 4 x 4 counts, rows = true level, columns = predicted level.
- ``macro_f1``: mean F1 over the levels that occur as a label or a prediction (F1 = 0 where no true
  positive).
- ``spearman``: Pearson correlation of the ranks of scores and labels, ties given their average rank.
- ``mean_score_per_level``: mean raw score of the rows of each true level (``None`` for an absent level).
- ``pairwise_accuracy``: over all pairs of rows in one group (``group_ids``) with different labels, the
  fraction where the higher label has the higher score; equal scores count one half. ``pairwise_pairs`` is
  the number of such pairs.
- ``per_kind``: the same metrics for each kind (``caption`` / ``document``) when ``kinds`` are given.

Rows whose score is NaN or infinite (rows the scorer could not score) are left out of every metric and
counted in ``num_invalid``. Undefined values (no rows, constant ranks, no pairs) are ``None``, so the result
is JSON-serialisable.

Example:
    >>> m = compute_quality_metrics([0.2, 1.6, 2.4, 2.9], [0, 1, 3, 3], group_ids=["a", "a", "b", "b"])
    >>> m["accuracy"], m["pairwise_accuracy"], m["pairwise_pairs"]
    (0.5, 1.0, 1)
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from .levels import NUM_LEVELS, levels_of

#: Local path of the ``evaluate`` metric module: ``evaluate.load(metrics_path)`` works offline.
metrics_path: str = os.path.join(os.path.dirname(os.path.abspath(__file__)), "metrics", "unifilter_quality")


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """4 x 4 counts; rows are true levels, columns predicted levels."""
    labels, predictions = np.asarray(labels, dtype=np.int64), np.asarray(predictions, dtype=np.int64)
    return np.bincount(NUM_LEVELS * labels + predictions, minlength=NUM_LEVELS**2).reshape(NUM_LEVELS, NUM_LEVELS)


def macro_f1(matrix: np.ndarray) -> float | None:
    """Mean F1 over the levels present as a label or a prediction in a confusion matrix.

    Example:
        >>> macro_f1(np.array([[1, 1, 0, 0], [0, 2, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]))  # F1 2/3 and 4/5
        0.7333333333333334
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    tp = np.diag(matrix)
    support, predicted = matrix.sum(axis=1), matrix.sum(axis=0)
    present = (support + predicted) > 0
    if not present.any():
        return None
    f1 = 2 * tp[present] / (support[present] + predicted[present])  # = 2PR / (P + R), safe when tp = 0
    return float(f1.mean())


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n, tied values sharing their average rank.

    Example:
        >>> average_ranks(np.array([10.0, 20.0, 10.0, 30.0])).tolist()
        [1.5, 3.0, 1.5, 4.0]
    """
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="stable")
    sorted_values = values[order]
    # Runs of equal values: each run gets the mean of the positions it spans.
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    run_ranks = (starts + ends + 1) / 2.0
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.repeat(run_ranks, ends - starts)
    return ranks


def spearman(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float | None:
    """Spearman's rank correlation with average ranks for ties; ``None`` if either side is constant.

    Example:
        >>> spearman([0.1, 0.4, 0.3, 0.9], [0, 1, 1, 3])
        0.9486832980505138
    """
    rx, ry = average_ranks(np.asarray(x)), average_ranks(np.asarray(y))
    if len(rx) < 2:
        return None
    rx, ry = rx - rx.mean(), ry - ry.mean()
    denom = np.sqrt((rx**2).sum() * (ry**2).sum())
    return None if denom == 0 else float((rx * ry).sum() / denom)


def pairwise_ranking(scores: np.ndarray, labels: np.ndarray, group_ids: Sequence) -> tuple[float | None, int]:
    """Within-group ranking accuracy over pairs with different labels (ties count 1/2), and the pair count.

    Example:
        >>> pairwise_ranking(np.array([3.0, 1.0, 1.0, 2.0]), np.array([3, 0, 2, 1]), ["g"] * 4)
        (0.75, 6)
    """
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    _, group = np.unique(np.asarray(group_ids, dtype=object).astype(str), return_inverse=True)
    order = np.argsort(group, kind="stable")
    bounds = np.flatnonzero(np.r_[True, group[order][1:] != group[order][:-1], True])
    credit, pairs = 0.0, 0
    for start, end in zip(bounds[:-1], bounds[1:]):
        idx = order[start:end]
        s, y = scores[idx], labels[idx]
        higher = y[:, None] > y[None, :]  # each pair once: row i has the higher label
        diff = s[:, None] - s[None, :]
        credit += float((diff[higher] > 0).sum() + 0.5 * (diff[higher] == 0).sum())
        pairs += int(higher.sum())
    return (credit / pairs if pairs else None), pairs


def _none_if_nan(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def _metrics(scores: np.ndarray, labels: np.ndarray, group_ids: np.ndarray | None) -> dict:
    n = len(scores)
    pred = levels_of(scores)
    matrix = confusion_matrix(labels, pred)
    out = {
        "num_examples": int(n),
        "accuracy": float((pred == labels).mean()) if n else None,
        "macro_f1": macro_f1(matrix),
        "confusion_matrix": matrix.tolist(),
        "spearman": spearman(scores, labels),
        "mean_score_per_level": [
            _none_if_nan(float(scores[labels == k].mean())) if (labels == k).any() else None
            for k in range(NUM_LEVELS)
        ],
    }
    if group_ids is not None:
        out["pairwise_accuracy"], out["pairwise_pairs"] = pairwise_ranking(scores, labels, group_ids)
    return out


def scores_and_levels(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    """`scores` as float64 and `labels` as int64 vectors of one length, labels within the four levels.

    Example:
        >>> scores_and_levels([0.5, 2.5], [0, 3])[1].tolist()
        [0, 3]
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    if len(scores) != len(labels):
        raise ValueError(f"{len(scores)} scores for {len(labels)} labels")
    if ((labels < 0) | (labels >= NUM_LEVELS)).any():
        raise ValueError(f"labels must be levels 0..{NUM_LEVELS - 1}")
    return scores, labels


def compute_quality_metrics(
    scores: Sequence[float] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    kinds: Sequence[str] | None = None,
    group_ids: Sequence | None = None,
) -> dict:
    """All quality metrics as a JSON-serialisable dict (see the module docstring for the definitions).

    Args:
        scores: predicted scores on the 0..3 scale (regression output or expected level).
        labels: true levels 0..3.
        kinds: optional kind per row (``"caption"`` / ``"document"``); adds ``per_kind``.
        group_ids: optional group per row (the four levels of one source share a group); adds
            ``pairwise_accuracy`` and ``pairwise_pairs``.

    Example:
        >>> m = compute_quality_metrics([2.8, 0.1, 1.2], [3, 0, 2], kinds=["caption", "caption", "document"])
        >>> m["confusion_matrix"][2], m["per_kind"]["document"]["accuracy"]
        ([0, 1, 0, 0], 0.0)
    """
    scores, labels = scores_and_levels(scores, labels)
    for name, column in (("kinds", kinds), ("group_ids", group_ids)):
        if column is not None and len(column) != len(labels):
            raise ValueError(f"{len(column)} {name} for {len(labels)} labels")
    valid = np.isfinite(scores)
    groups = None if group_ids is None else np.asarray(group_ids, dtype=object)[valid]
    out = _metrics(scores[valid], labels[valid], groups)
    out["num_invalid"] = int((~valid).sum())
    if kinds is not None:
        kinds_arr = np.asarray(kinds, dtype=object)
        out["per_kind"] = {}
        for kind in sorted(set(kinds_arr.tolist())):
            keep = valid & (kinds_arr == kind)
            sub_groups = None if group_ids is None else np.asarray(group_ids, dtype=object)[keep]
            out["per_kind"][kind] = _metrics(scores[keep], labels[keep], sub_groups)
            out["per_kind"][kind]["num_invalid"] = int(((kinds_arr == kind) & ~valid).sum())
    return out


__all__ = [
    "NUM_LEVELS",
    "average_ranks",
    "compute_quality_metrics",
    "confusion_matrix",
    "macro_f1",
    "metrics_path",
    "pairwise_ranking",
    "spearman",
]
