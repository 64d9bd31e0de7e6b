"""The `multimodal-quality-scoring` pipeline task.

Example:
    >>> from transformers import pipeline
    >>> scorer = pipeline("multimodal-quality-scoring", model="weizhiwang/UniFilter-Qwen2.5-1.5B")  # doctest: +SKIP
    >>> scorer({"image": "cat.jpg", "text": "An orange cat on a sofa."}, threshold=2.0)  # doctest: +SKIP
    {'score': 2.71, 'level': 3, 'probs': None, 'error': None, 'keep': True}
"""

from __future__ import annotations

import torch
from transformers import Pipeline

from .row_layouts import try_to_sample
from .scoring import ScoreRecord, records_from_logits


class MultimodalQualityScoringPipeline(Pipeline):
    """Scores captions `{"image", "text"}` and documents `{"images", "texts"}` on the 0..3 quality scale.

    Images may be PIL images, local paths, `file://` or http(s) URLs, raw bytes or `datasets` Image dicts.
    Each result is `{"score", "level", "probs", "error"}` (+ `"keep"` when `threshold=` is given); an input
    that cannot be read gets `score = nan` and a short `error` instead of an exception.
    """

    _load_processor = True
    _load_tokenizer = False
    _load_image_processor = False
    _load_feature_extractor = False

    def save_pretrained(self, save_directory, **kwargs):
        """Save model, code and processor (the base class skips the processor, which loading needs)."""
        super().save_pretrained(save_directory, **kwargs)
        self.processor.save_pretrained(save_directory)

    def _sanitize_parameters(self, threshold=None, max_length=None, image_timeout=None, **kwargs):
        preprocess = {}
        if max_length is not None:
            preprocess["max_length"] = max_length
        if image_timeout is not None:
            preprocess["image_timeout"] = image_timeout
        postprocess = {} if threshold is None else {"threshold": threshold}
        return preprocess, {}, postprocess

    def preprocess(self, inputs, max_length=None, image_timeout=10.0):
        sample, reason = try_to_sample(inputs, timeout=image_timeout)
        if sample is None:
            # A one-token stand-in keeps the row in the batch; postprocess reports the error instead.
            encoded = {"input_ids": torch.tensor([[self.processor.tokenizer.eos_token_id or 0]]),
                       "attention_mask": torch.ones(1, 1, dtype=torch.long)}
        else:
            encoded = dict(self.processor([sample], max_length=max_length))
        if "pixel_values" not in encoded:  # batching needs the same keys in every row
            size = self.processor.image_processor.size
            encoded["pixel_values"] = torch.zeros(0, 3, size["height"], size["width"])
        encoded["error"] = reason
        return encoded

    def _forward(self, model_inputs):
        errors = model_inputs.pop("error")
        out = self.model(**model_inputs)
        return {"logits": out.logits, "scores": out.scores, "error": errors}

    def postprocess(self, model_outputs, threshold=None):
        error = model_outputs["error"]
        error = error[0] if isinstance(error, list) else error
        if error is not None:
            record = ScoreRecord.failed(error)
        else:
            record = records_from_logits(model_outputs["logits"], model_outputs["scores"])[0]
        result = record.to_dict()
        if threshold is not None:
            result["keep"] = record.keep(threshold)
        return result


class _EnvDefault(dict):
    """Task defaults read at `pipeline()` time, so `$UNIFILTER_MODEL` set after import still applies."""

    def __getitem__(self, key):
        if key == "model":
            from .scoring import default_model_id

            return default_model_id(), None
        return super().__getitem__(key)


def register_pipeline() -> None:
    """Register the task with transformers (done on `import unifilter_hf`)."""
    from transformers import AutoModelForSequenceClassification
    from transformers.pipelines import PIPELINE_REGISTRY

    PIPELINE_REGISTRY.register_pipeline(
        "multimodal-quality-scoring",
        pipeline_class=MultimodalQualityScoringPipeline,
        pt_model=AutoModelForSequenceClassification,
        default=_EnvDefault(model=None),
        type="multimodal",
    )


__all__ = ["MultimodalQualityScoringPipeline", "register_pipeline"]
