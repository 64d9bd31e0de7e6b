"""The final validation results of a training run: metrics, calibration and ``metrics.json``.

Example:
    >>> import numpy as np
    >>> jsonable({"a": np.float32(0.5), "m": np.eye(2, dtype=int)})
    {'a': 0.5, 'm': [[1, 0], [0, 1]]}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from ..calibration import (
    calibrated_probs,
    expected_calibration_error,
    fit_calibration,
    fit_level_thresholds,
    to_level_scale,
)
from ..quality_metrics import compute_quality_metrics
from .metrics import per_edit_accuracy, predicted_scores


def jsonable(value: Any) -> Any:
    """Numpy scalars/arrays and nested containers as plain JSON values."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def validation_report(trainer, eval_dataset, calibrate: bool = True) -> tuple[dict, np.ndarray, np.ndarray]:
    """Predict the validation split; return (report, scores, labels).

    The report holds the Trainer's ``eval_*`` scalars, the full quality metrics (confusion matrix, per-level
    means, per kind), per-edit-type accuracy when the data has an ``edit`` column, and with ``calibrate`` the
    calibration map fitted on these scores (stored by the caller in ``config.calibration``) and its ECE.
    """
    output = trainer.predict(eval_dataset, metric_key_prefix="eval")
    scores = predicted_scores(output.predictions)
    labels = np.asarray(output.label_ids).reshape(-1).astype(int)
    columns = eval_dataset.column_names
    kinds = eval_dataset["kind"] if "kind" in columns else None
    groups = eval_dataset["group_id"] if "group_id" in columns else None
    report: dict[str, Any] = dict(output.metrics)
    fit, shown = held_out_halves(groups, len(labels)) if calibrate else (None, np.arange(len(labels)))
    level_scores = scores
    if calibrate:
        # Fitted on one half of the groups, measured on the other: the map and the cuts never see the rows
        # whose accuracy and ECE are reported.
        calibration = fit_calibration(scores[fit], labels[fit])
        calibration["level_thresholds"] = fit_level_thresholds(scores[fit], labels[fit])
        calibration["fitted_on_rows"] = int(len(fit))
        report["calibration"] = calibration
        report["eval_ece"] = float(expected_calibration_error(calibrated_probs(scores[shown], calibration),
                                                              labels[shown]))
        level_scores = to_level_scale(scores, calibration["level_thresholds"])
        report["quality_metrics_raw_rule"] = compute_quality_metrics(
            scores[shown], labels[shown], _take(kinds, shown), _take(groups, shown))
    report["quality_metrics"] = compute_quality_metrics(level_scores[shown], labels[shown], _take(kinds, shown),
                                                        _take(groups, shown))
    report["quality_metrics"]["mean_raw_score_per_level"] = report.get("quality_metrics_raw_rule", report[
        "quality_metrics"])["mean_score_per_level"]
    if "edit" in columns:
        report["eval_accuracy_per_edit"] = per_edit_accuracy(level_scores[shown], labels[shown],
                                                             _take(eval_dataset["edit"], shown))
        report.update({f"eval_accuracy_{k}": v for k, v in report["eval_accuracy_per_edit"].items()})
    if calibrate:  # the Trainer's scalars covered every row with the raw rule: state the reported half's
        q = report["quality_metrics"]
        report.update(eval_accuracy_raw_rule_all_rows=report.get("eval_accuracy"), eval_accuracy=q["accuracy"],
                      eval_macro_f1=q["macro_f1"], eval_num_examples=q["num_examples"])
    return jsonable(report), scores, labels


def held_out_halves(group_ids, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of (fit, report): every other group, in order of first appearance, fits the level thresholds
    and the calibration map; the rest is reported. Without groups (or with one), every other row.

    Example:
        >>> [x.tolist() for x in held_out_halves(["a", "a", "b", "b", "c", "c"], 6)]
        [[0, 1, 4, 5], [2, 3]]
    """
    if group_ids is None or len(set(group_ids)) < 2:
        keys = list(range(n))
    else:
        keys = list(group_ids)
    rank = {g: k for k, g in enumerate(dict.fromkeys(keys))}
    fit = np.array([rank[g] % 2 == 0 for g in keys])
    return np.flatnonzero(fit), np.flatnonzero(~fit)


def _take(column, rows: np.ndarray):
    return None if column is None else [column[int(i)] for i in rows]


def write_metrics(report: dict, output_dir: str | Path) -> Path:
    """Write ``metrics.json`` (sorted keys, indented) and return its path."""
    path = Path(output_dir) / "metrics.json"
    path.write_text(json.dumps(jsonable(report), indent=2, sort_keys=True) + "\n")
    return path
