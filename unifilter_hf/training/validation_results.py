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

from ..calibration import calibrated_probs, expected_calibration_error, fit_calibration
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
    report["quality_metrics"] = compute_quality_metrics(scores, labels, kinds, groups)
    if "edit" in columns:
        report["eval_accuracy_per_edit"] = per_edit_accuracy(scores, labels, eval_dataset["edit"])
    if calibrate:
        calibration = fit_calibration(scores, labels)
        probs = calibrated_probs(scores, calibration)
        report["calibration"] = calibration
        report["eval_ece"] = float(expected_calibration_error(probs, labels))
    return jsonable(report), scores, labels


def write_metrics(report: dict, output_dir: str | Path) -> Path:
    """Write ``metrics.json`` (sorted keys, indented) and return its path."""
    path = Path(output_dir) / "metrics.json"
    path.write_text(json.dumps(jsonable(report), indent=2, sort_keys=True) + "\n")
    return path
