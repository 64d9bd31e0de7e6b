"""The `multimodal-quality-scoring` pipeline task.

Example:
    >>> from transformers import pipeline
    >>> scorer = pipeline("multimodal-quality-scoring", model="weizhiwang/UniFilter-Qwen2.5-1.5B")  # doctest: +SKIP
    >>> scorer({"image": "cat.jpg", "text": "An orange cat on a sofa."}, threshold=2.0)  # doctest: +SKIP
    {'score': 2.71, 'level': 3, 'probs': None, 'error': None, 'keep': True}
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator

from transformers import Pipeline

from .configuration_unifilter import PIPELINE_TASK
from .scoring import QualityScorer

_WINDOW_BATCHES = 8  # rows read and planned together: this many batches (at least _MIN_WINDOW rows)
_MIN_WINDOW = 64


class MultimodalQualityScoringPipeline(Pipeline):
    """Scores captions `{"image", "text"}` and documents `{"images", "texts"}` on the 0..3 quality scale.

    Images may be PIL images, local paths, `file://` or http(s) URLs, raw bytes or `datasets` Image dicts.
    Each result is `{"score", "level", "probs", "error", "images_dropped", "images_cut"}` (+ `"keep"` when
    `threshold=` is given); an input that cannot be read gets `score = nan` and a short `error` instead of an
    exception. A list gives a list, a generator or a `datasets` dataset an iterator of results in order.

    Parameters (at creation or per call): `threshold`, `max_length`, `image_timeout`, `max_images`,
    `on_image_error` (see docs/input_handling.md), `max_batch_tokens`, `compile`, `prepare_workers`
    (docs/scaling.md); precision
    with the pipeline's own `dtype=` at creation. Anything else raises `TypeError`.

    Rows are scored by the package's one batch path (`QualityScorer.score_read`): read in threads, then
    length-sorted micro-batches of `batch_size` (default 1, as for every pipeline), a failed one retried
    row by row. `preprocess` hands the row on unread, `_forward` runs the scorer, `postprocess` makes the dicts.

    Trust (docs/security.md): inputs you pass yourself are yours, so their local paths are read as given; the
    rows of a `datasets` dataset passed whole are data, read as `score` reads them (local paths only inside
    the current folder) unless the opt-ins say otherwise. URLs reach public addresses only, either way, unless
    `$UNIFILTER_ALLOW_PRIVATE_URLS` names the private networks allowed.
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
        # The natural caption forms: pipe(image, "text"), pipe(image=..., text=...), and lists of both.
        inputs, args = _caption_inputs(inputs, args, kwargs)
        if isinstance(inputs, list) and not inputs:
            self._sanitize_parameters(**kwargs)  # an empty call still refuses unknown parameters
            return []
        if _is_datasets_dataset(inputs):  # rows in order, like a streaming dataset (not one big input)
            inputs = (row for row in inputs)
            kwargs["_rows_from_data"] = True
        return super().__call__(inputs, *args, **kwargs)

    def _sanitize_parameters(
        self, threshold=None, max_length=None, image_timeout=None, max_images=None, on_image_error=None,
        max_batch_tokens=None, compile=None, prepare_workers=None, _rows_from_data=False, **kwargs
    ):
        if kwargs:
            raise TypeError(
                f"unknown parameter(s) {sorted(kwargs)} for multimodal-quality-scoring; accepted: threshold, "
                "max_length, image_timeout, max_images, on_image_error, max_batch_tokens, compile, "
                "prepare_workers (and batch_size, num_workers, dtype at creation)"
            )
        options = {"max_length": max_length, "image_timeout": image_timeout, "max_images": max_images,
                   "on_image_error": on_image_error, "max_batch_tokens": max_batch_tokens, "compile": compile,
                   "prepare_workers": prepare_workers}
        postprocess = {} if threshold is None else {"threshold": threshold}
        forward = {k: v for k, v in options.items() if v is not None}
        forward["allow_local_files"] = None if _rows_from_data else True  # the caller's own paths are trusted
        return {}, forward, postprocess

    @property
    def scorer(self) -> QualityScorer:
        """The `QualityScorer` over this pipeline's model and processor (per-call options derive from it)."""
        if getattr(self, "_scorer", None) is None:
            self._scorer = QualityScorer(self.model, self.processor, batch_size=1)
        return self._scorer

    def preprocess(self, inputs):
        # Reading (images fetched and decoded in threads) is the scorer's first step, in `_forward`.
        return {"rows": [inputs]}

    def _forward(self, model_inputs, batch_size=1, **options):
        scorer = self.scorer.with_options(batch_size=batch_size, **options)
        return {"records": scorer.score_rows(model_inputs["rows"])}

    def postprocess(self, model_outputs, threshold=None) -> list[dict]:
        results = []
        for record in model_outputs["records"]:
            result = record.to_dict()
            if threshold is not None:
                result["keep"] = record.keep(threshold)
            results.append(result)
        return results

    def run_single(self, inputs, preprocess_params, forward_params, postprocess_params):
        return self._run(self.preprocess(inputs, **preprocess_params)["rows"], forward_params,
                         postprocess_params)[0]

    def get_iterator(self, inputs, num_workers, batch_size, preprocess_params, forward_params, postprocess_params):
        # Lists, generators and torch datasets (KeyDataset): windows of rows through the scorer, results in
        # order and lazily; `num_workers` is not needed (the scorer reads each window's rows in threads).
        window = max(batch_size * _WINDOW_BATCHES, _MIN_WINDOW)
        forward_params = {**forward_params, "batch_size": batch_size}
        for chunk in _windows(_rows_of(inputs), window):
            rows = [row for x in chunk for row in self.preprocess(x, **preprocess_params)["rows"]]
            yield from self._run(rows, forward_params, postprocess_params)

    def _run(self, rows: list, forward_params: dict, postprocess_params: dict) -> list[dict]:
        return self.postprocess(self._forward({"rows": rows}, **forward_params), **postprocess_params)


def _rows_of(inputs) -> Iterable:
    if hasattr(inputs, "__iter__"):
        return inputs
    return (inputs[i] for i in range(len(inputs)))  # a torch Dataset: indexable, maybe not iterable


def _windows(rows: Iterable, size: int) -> Iterator[list]:
    iterator = iter(rows)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def _caption_inputs(inputs, args: tuple, kwargs: dict) -> tuple:
    """`(image, text)` given positionally or as `image=` / `text=` keywords -> the row form `{"image", "text"}`."""
    if "image" in kwargs or "text" in kwargs:
        if inputs is not None or args or not ("image" in kwargs and "text" in kwargs):
            raise TypeError("pass either one input (a row, or a list of rows) or both image= and text=")
        inputs, args = kwargs.pop("image"), (kwargs.pop("text"),)
    if len(args) != 1 or isinstance(inputs, dict):
        return inputs, args
    text = args[0]
    if isinstance(text, str):
        return {"image": inputs, "text": text}, ()
    if isinstance(text, (list, tuple)) and isinstance(inputs, (list, tuple)):
        if len(text) != len(inputs):
            raise ValueError(f"{len(inputs)} images for {len(text)} texts")
        return [{"image": image, "text": t} for image, t in zip(inputs, text)], ()
    return inputs, args


def custom_pipelines_entry() -> dict:
    """The `custom_pipelines` config entry that makes a saved folder run this pipeline as remote code."""
    return {
        PIPELINE_TASK: {
            "impl": f"{__name__.rpartition('.')[2]}.{MultimodalQualityScoringPipeline.__name__}",
            "pt": ["AutoModelForSequenceClassification"],
            "type": "multimodal",
        }
    }


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
        PIPELINE_TASK,
        pipeline_class=MultimodalQualityScoringPipeline,
        pt_model=AutoModelForSequenceClassification,
        default=_EnvDefault(model=None),
        type="multimodal",
    )


__all__ = ["MultimodalQualityScoringPipeline", "register_pipeline", "save_scoring_checkpoint"]
