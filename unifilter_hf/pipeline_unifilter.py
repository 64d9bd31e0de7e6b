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
    Each result is `{"score", "level", "probs", "error", "images_dropped", "images_cut"}` (+ `"keep"` when
    `threshold=` is given); an input that cannot be read gets `score = nan` and a short `error` instead of an
    exception. A list gives a list, a generator or a `datasets` dataset an iterator of results in order.

    Parameters (at creation or per call): `threshold`, `max_length`, `image_timeout`, `max_images`,
    `on_image_error` (see docs/input_handling.md). Anything else raises `TypeError`.

    Trust (docs/security.md): inputs you pass yourself are yours, so their local paths are read as given; the
    rows of a `datasets` dataset passed whole are data, read like `score` reads them (local paths only inside
    the current folder, no private addresses) unless the opt-ins say otherwise.
    """

    _load_processor = True
    _load_tokenizer = False
    _load_image_processor = False
    _load_feature_extractor = False

    def save_pretrained(self, save_directory, **kwargs):
        """Save model, code and processor (the base class skips the processor, which loading needs)."""
        super().save_pretrained(save_directory, **kwargs)
        self.processor.save_pretrained(save_directory)

    def __call__(self, inputs=None, *args, **kwargs):
        if isinstance(inputs, list) and not inputs:
            self._sanitize_parameters(**kwargs)  # an empty call still refuses unknown parameters
            return []
        if _is_datasets_dataset(inputs):  # rows in order, like a streaming dataset (not one big input)
            inputs = (_DataRow(row) for row in inputs)
        return super().__call__(inputs, *args, **kwargs)

    def _sanitize_parameters(
        self, threshold=None, max_length=None, image_timeout=None, max_images=None, on_image_error=None, **kwargs
    ):
        if kwargs:
            raise TypeError(
                f"unknown parameter(s) {sorted(kwargs)} for multimodal-quality-scoring; accepted: threshold, "
                "max_length, image_timeout, max_images, on_image_error (and batch_size, num_workers)"
            )
        row_options = {"timeout": image_timeout, "max_images": max_images, "on_image_error": on_image_error}
        preprocess = {"row_options": {k: v for k, v in row_options.items() if v is not None}}
        if max_length is not None:
            preprocess["max_length"] = max_length
        postprocess = {} if threshold is None else {"threshold": threshold}
        return preprocess, {}, postprocess

    def preprocess(self, inputs, max_length=None, row_options=None):
        trusted = {} if isinstance(inputs, _DataRow) else {"allow_local_files": True}
        sample, reason = try_to_sample(inputs, **trusted, **(row_options or {}))
        if sample is None:
            # A one-token stand-in keeps the row in the batch; postprocess reports the error instead.
            encoded = {"input_ids": torch.tensor([[self.processor.tokenizer.eos_token_id or 0]]),
                       "attention_mask": torch.ones(1, 1, dtype=torch.long)}
            counts = [0, 0]
        else:
            encoded = dict(self.processor([sample], max_length=max_length, return_image_counts=True))
            kept = int(encoded.pop("num_images")[0])
            counts = [len(sample.meta.get("dropped", ())), sample.num_images - kept]
        if "pixel_values" not in encoded:  # batching needs the same keys in every row
            size = self.processor.image_processor.size
            encoded["pixel_values"] = torch.zeros(0, 3, size["height"], size["width"])
        encoded["error"] = reason
        encoded["image_counts"] = torch.tensor([counts])
        return encoded

    def _forward(self, model_inputs):
        errors, counts = model_inputs.pop("error"), model_inputs.pop("image_counts")
        out = self.model(**model_inputs)
        return {"logits": out.logits, "scores": out.scores, "error": errors, "image_counts": counts}

    def postprocess(self, model_outputs, threshold=None):
        error = model_outputs["error"]
        error = error[0] if isinstance(error, list) else error
        if error is not None:
            record = ScoreRecord.failed(error)
        else:
            calibration = getattr(self.model.config, "calibration", None)
            record = records_from_logits(model_outputs["logits"], model_outputs["scores"], calibration)[0]
            record.images_dropped, record.images_cut = (int(v) for v in model_outputs["image_counts"].view(-1))
        result = record.to_dict()
        if threshold is not None:
            result["keep"] = record.keep(threshold)
        return result


def _is_datasets_dataset(obj) -> bool:
    try:
        import datasets
    except ImportError:  # as remote code the pipeline may run without `datasets`
        return False
    return isinstance(obj, datasets.Dataset)


class _EnvDefault(dict):
    """Task defaults read at `pipeline()` time, so `$UNIFILTER_MODEL` set after import still applies."""

    def __getitem__(self, key):
        if key == "model":
            from .scoring import default_model_id, ensure_model_available

            ensure_model_available(default_model_id())  # offline: name the model and the fix, not a network error
            return default_model_id(), None
        return super().__getitem__(key)


def save_scoring_checkpoint(model, processor, folder) -> None:
    """Save a model with its processor and this pipeline's code (`custom_pipelines` in its config).

    The folder then runs as `pipeline("multimodal-quality-scoring", model=folder, trust_remote_code=True)`
    (or `pipeline(model=folder, ...)`) where unifilter-hf is not installed.

    Example:
        >>> save_scoring_checkpoint(model, processor, "my-checkpoint")  # doctest: +SKIP
    """
    from transformers import pipeline

    pipeline("multimodal-quality-scoring", model=model, processor=processor, device=model.device).save_pretrained(
        folder
    )


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


__all__ = ["MultimodalQualityScoringPipeline", "register_pipeline", "save_scoring_checkpoint"]


class _DataRow(dict):
    """A row that came from a dataset (untrusted), not from the caller's own arguments."""
