"""UniFilter quality metrics as an `evaluate` module, loaded offline from its local path.

The math lives in :mod:`unifilter_hf.quality_metrics`; this file only adapts it to `evaluate`. Write one
module per import statement: evaluate's dependency scanner misreads ``import a, b``.

Example:
    >>> import evaluate
    >>> import unifilter_hf
    >>> metric = evaluate.load(unifilter_hf.metrics_path)
    >>> m = metric.compute(predictions=[2.9, 0.2], references=[3, 0], group_ids=["a", "a"])
    >>> m["accuracy"], m["pairwise_accuracy"]
    (1.0, 1.0)
"""

import datasets
import evaluate

from unifilter_hf.quality_metrics import compute_quality_metrics

_DESCRIPTION = """
Metrics for UniFilter quality scores on the 0..3 level scale: accuracy of the nearest level (half up, clamped to 0..3),
macro-F1, the 4x4 confusion matrix (rows = true level), Spearman correlation, mean score per level,
within-group pairwise ranking accuracy, and all of them per kind (caption / document).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: scores (float), regression outputs or expected levels.
    references: true levels 0..3 (int).
    kinds: optional, passed to `compute` only: the kind of each row ("caption" / "document"); adds `per_kind`.
    group_ids: optional, passed to `compute` only: the group of each row (the four levels of one source);
        adds `pairwise_accuracy` and `pairwise_pairs`.
Returns:
    a JSON-serialisable dict: accuracy, macro_f1, confusion_matrix, spearman, mean_score_per_level,
    num_examples, num_invalid, and pairwise_accuracy / pairwise_pairs / per_kind when asked for.
"""

_CITATION = """
@inproceedings{wang2025unifilter,
  title={Train a Unified Multimodal Data Quality Classifier with Synthetic Data},
  author={Wang, Weizhi and others},
  booktitle={Findings of EMNLP},
  year={2025}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class UnifilterQuality(evaluate.Metric):
    """Accuracy, macro-F1, confusion matrix, Spearman, per-level means and pairwise ranking of 0..3 scores."""

    def _info(self):
        # kinds / group_ids are `compute` keyword arguments, not features: evaluate 0.4 requires every
        # feature of the first format in each call, so optional columns cannot be features.
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("float32"),
                                        "references": datasets.Value("int32")}),
            format="numpy",
        )

    def _compute(self, predictions, references, kinds=None, group_ids=None):
        return compute_quality_metrics(predictions, references, kinds=kinds, group_ids=group_ids)
