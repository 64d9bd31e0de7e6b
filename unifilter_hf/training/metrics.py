"""``compute_metrics`` for the Trainer and the final validation report, from ``unifilter_hf.quality_metrics``.

Evaluation runs in dataset order (the Trainer's eval sampler is sequential), so the validation rows' kinds,
groups and edit types line up with the predictions.

Example:
    >>> import numpy as np
    >>> per_edit_accuracy(np.array([2.1, 0.2, 2.9]), np.array([2, 1, 2]), ["colour", "colour+count", "count"])
    {'colour': 0.5, 'count': 0.0}
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

EDIT_TYPES = ("colour", "shape", "count", "position")


def predicted_scores(predictions) -> np.ndarray:
    """Scores from ``EvalPrediction.predictions``: ``(logits, scores)`` from the model, or bare scores."""
    if isinstance(predictions, (tuple, list)):
        predictions = predictions[-1]
    return np.asarray(predictions, dtype=np.float64).reshape(-1)


def per_edit_accuracy(scores: np.ndarray, labels: np.ndarray, edits: Sequence[str]) -> dict[str, float]:
    """Four-level accuracy of the rows whose ``edit`` includes each edit type (level 2: one edit, 1: several)."""
    from ..levels import levels_of

    preds = levels_of(scores)
    out = {}
    for kind in EDIT_TYPES:
        rows = [i for i, e in enumerate(edits) if kind in str(e).split("+")]
        if rows:
            out[kind] = float(np.mean(preds[rows] == np.asarray(labels)[rows]))
    return out


def make_compute_metrics(eval_dataset) -> Callable:
    """A ``compute_metrics`` for ``eval_dataset``: quality metrics with per-kind and within-group results.

    Nested results (confusion matrix, per-level means, per-kind) are kept out of the logged scalars and
    reported in ``metrics.json`` by the final evaluation; per-edit-type accuracy is added when the data
    has an ``edit`` column (the shapes world).
    """
    from ..quality_metrics import compute_quality_metrics

    columns = eval_dataset.column_names
    kinds = eval_dataset["kind"] if "kind" in columns else None
    groups = eval_dataset["group_id"] if "group_id" in columns else None
    edits = eval_dataset["edit"] if "edit" in columns else None

    def compute_metrics(eval_pred) -> dict[str, float]:
        scores = predicted_scores(eval_pred.predictions)
        labels = np.asarray(eval_pred.label_ids).reshape(-1).astype(int)
        n = len(scores)
        metrics = compute_quality_metrics(scores, labels, kinds[:n] if kinds else None,
                                          groups[:n] if groups else None)
        flat = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float, np.floating, np.integer))}
        per_level = metrics.get("mean_score_per_level") or {}
        for level, mean in (per_level.items() if isinstance(per_level, dict) else enumerate(per_level)):
            if mean is not None:
                flat[f"mean_score_level_{level}"] = float(mean)
        if edits is not None:
            flat.update({f"accuracy_{k}": v for k, v in per_edit_accuracy(scores, labels, edits[:n]).items()})
        return flat

    return compute_metrics
