"""The model card of a trained checkpoint, rendered from ``model_cards/trained_checkpoint.md``.

Example:
    >>> card = render_card(model_id="me/x", recipe="r.yaml", recipe_text="loss: mse", report={},
    ...                    summary={"dataset": "shapes_world"})  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

TEMPLATE = Path(__file__).resolve().parent.parent / "model_cards" / "trained_checkpoint.md"  # in the wheel too
_SCALARS = ("eval_accuracy", "eval_macro_f1", "eval_spearman", "eval_pairwise_accuracy", "eval_loss", "eval_ece")
# The Hub's model-index names for the validation metrics (metric type, display name).
_INDEX_METRICS = {
    "eval_accuracy": ("accuracy", "Level accuracy"), "eval_macro_f1": ("f1", "Macro F1"),
    "eval_spearman": ("spearmanr", "Spearman"), "eval_pairwise_accuracy": ("accuracy", "Pairwise accuracy"),
    "eval_ece": ("ece", "Expected calibration error"),
}
TASK = "multimodal-quality-scoring"  # the pipeline task the checkpoint runs (not a Hub pipeline_tag)


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def render_card(model_id: str, recipe: str, recipe_text: str, report: dict, summary: dict) -> ModelCard:
    """A ``ModelCard`` with the validation metrics, confusion matrix, data provenance and recipe.

    ``summary`` holds the run facts (dataset, sizes, loss, parameter counts, ...); missing keys print as "-".
    """
    quality = report.get("quality_metrics", {})
    metrics = [(k, _fmt(report[k])) for k in _SCALARS if report.get(k) is not None]
    per_level = quality.get("mean_score_per_level") or {}
    items = per_level.items() if isinstance(per_level, dict) else enumerate(per_level)
    metrics += [(f"mean score, level {k}", _fmt(float(v))) for k, v in items if v is not None]
    # No Hub pipeline_tag fits quality scoring (image-text-to-text would send users to a pipeline that fails);
    # the task is in the tags and in model-index, and pipeline(model=...) reads it from `custom_pipelines`.
    dataset = summary.get("dataset_id") or summary.get("dataset") or "validation"
    eval_results = [
        EvalResult(task_type=TASK, task_name="Multimodal quality scoring", dataset_type=str(dataset),
                   dataset_name=str(summary.get("dataset") or dataset), dataset_split="validation",
                   metric_type=_INDEX_METRICS[key][0], metric_name=_INDEX_METRICS[key][1], metric_value=report[key])
        for key in _INDEX_METRICS if isinstance(report.get(key), (int, float))
    ]
    data = ModelCardData(
        license="apache-2.0", library_name="transformers",
        tags=["unifilter", "unifilter-hf", "data-filtering", TASK],
        base_model=summary.get("base_models") or None,
        datasets=[summary["dataset_id"]] if summary.get("dataset_id") else None,
        model_name=model_id if eval_results else None, eval_results=eval_results or None,
    )
    context = {k: summary.get(k, "-") for k in (
        "dataset", "dataset_description", "loss", "total_params", "trainable_params", "finetuning", "vision",
        "text", "num_image_tokens", "learning_rate", "scheduler", "warmup", "steps", "train_rows",
        "num_validation", "from_scratch")}
    return ModelCard.from_template(
        data, template_path=str(TEMPLATE), model_id=model_id, recipe=recipe, recipe_text=recipe_text.strip(),
        metrics=metrics, per_edit=[(k, _fmt(v)) for k, v in report.get("eval_accuracy_per_edit", {}).items()],
        confusion=quality.get("confusion_matrix", []), calibrated="calibration" in report,
        ece=_fmt(report.get("eval_ece")), **context,
    )
