"""The one scoring path: samples or raw rows -> length-bucketed batches -> score records.

The pipeline's postprocessing, the `datasets` callables and later the curation engines all turn model outputs
into the same :class:`ScoreRecord`, so a row gets the same score whichever door it came through.

Example:
    >>> from unifilter_hf.tiny import tiny_model_and_processor
    >>> scorer = QualityScorer(*tiny_model_and_processor())
    >>> records = scorer.score_rows([{"image": b"not an image", "text": "a cat"}])
    >>> records[0].error
    'image: not a recognized image format'
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import torch

from .compilation import forward_fn, resolve_dtype
from .errors import UniFilterError
from .host_threads import default_prepare_workers, one_thread_in_forked_children, prepared_ahead
from .levels import NO_LEVEL, is_regression, level_of
from .micro_batches import batch_plan
from .row_layouts import ColumnMap, ImageErrorPolicy, try_to_sample
from .sample import Sample

logger = logging.getLogger(__name__)


# The task's default checkpoint; UNIFILTER_MODEL overrides it everywhere (tests point it at a local folder).
OFFICIAL_DEFAULT_MODEL = "weizhiwang/UniFilter-Qwen2.5-1.5B"
MODEL_ENV_VAR = "UNIFILTER_MODEL"
DEFAULT_THRESHOLD = 2.0


def ensure_model_available(name_or_path: str) -> None:
    """Fail at once, naming the model and how to choose another, when it cannot be loaded offline.

    Example:
        >>> import os
        >>> ensure_model_available(os.getcwd())  # an existing folder: nothing to check here
    """
    from pathlib import Path

    from huggingface_hub import constants, try_to_load_from_cache

    if Path(name_or_path).expanduser().exists() or not constants.HF_HUB_OFFLINE:
        return
    try:
        cached = try_to_load_from_cache(name_or_path, "config.json")
    except ValueError:  # not a repo id either
        cached = None
    if not isinstance(cached, str):
        raise ModelNotFoundError(name_or_path, OSError("offline (HF_HUB_OFFLINE=1) and not in the local Hub cache"))


def default_model_id() -> str:
    """The model used when none is given: `$UNIFILTER_MODEL`, else the official Qwen2.5-1.5B checkpoint."""
    return os.environ.get(MODEL_ENV_VAR) or OFFICIAL_DEFAULT_MODEL


@dataclass
class ScoreRecord:
    """One scored row. `score` is NaN and `error` holds a short reason when the row could not be scored.

    `images_dropped` counts a document's image slots removed while reading it (failed loads, 1-pixel
    images, the `max_images` cap; the reasons are in the log), `images_cut` the images beyond the model's
    `max_length` that the processor left out. A score with either above 0 judged a shortened document.
    """

    score: float
    level: int | None = None
    probs: list[float] | None = None
    error: str | None = None
    images_dropped: int = 0
    images_cut: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None

    def keep(self, threshold: float) -> bool:
        """The filter decision: scored and at least `threshold`."""
        return self.ok and self.score >= threshold

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def failed(cls, reason: str) -> ScoreRecord:
        return cls(score=math.nan, error=reason)


def records_from_logits(
    logits: torch.Tensor, scores: torch.Tensor, calibration: dict | None = None
) -> list[ScoreRecord]:
    """Records for a batch of model outputs.

    Regression heads: `level` is `levels.level_of(score)` (the nearest level, half up, clamped to 0..3); with a
    `calibration` map (stored in a trained checkpoint's config) `probs` are its per-level probabilities, and
    its `level_thresholds` (fitted by training on held-out validation rows) place the cuts between levels
    (`calibration.decided_levels`), as in the accuracy the training run reports.
    Classification heads: `level` is the argmax level and `probs` the per-level probabilities.
    """
    logits, scores = logits.float().cpu(), scores.float().cpu()
    if is_regression(logits.shape[-1]):
        values = scores.tolist()
        probs, levels = [None] * len(values), [level_of(s) for s in values]
        if calibration:
            from .calibration import calibrated_probs, decided_levels

            probs = calibrated_probs(values, calibration).tolist()
            levels = [None if d == NO_LEVEL else int(d) for d in decided_levels(values, calibration)]
        return [ScoreRecord(score=s, level=lv, probs=p) for s, lv, p in zip(values, levels, probs)]
    probs = logits.softmax(-1)
    return [
        ScoreRecord(score=s, level=int(p.argmax()), probs=p.tolist()) for s, p in zip(scores.tolist(), probs)
    ]


class QualityScorer:
    """Scores samples or dataset rows with a UniFilter model, batch by batch, never failing a whole batch.

    Rows inside one call are read concurrently (image URLs are fetched in parallel threads), then sorted by
    length (image tokens + text tokens) into micro-batches of `batch_size` (`batch_plan`), a micro-batch
    ending early where padding would exceed `max_padding`, so padding stays small; results come back in
    input order and do not depend on batching. A row that cannot be read, or whose micro-batch fails in the
    model, gets a NaN score and a reason.

    Args:
        model: a `UniFilterForQualityScoring` (moved to `device` if given).
        processor: its `UniFilterProcessor`.
        batch_size: rows per forward pass.
        columns: a `ColumnMap` (or dict) naming the row columns; detected from the first row otherwise.
        max_images / image_timeout / on_image_error / image_root: passed to `row_layouts.to_sample`.
        allow_local_files / allow_private_urls: the opt-ins of `row_layouts.to_sample` for rows' local paths
            outside their folder and URLs to private addresses (docs/security.md; None: the environment).
        read_workers: threads that read rows (fetch and decode images) at once.
        max_padding: most padded positions per real one in a micro-batch beyond which it ends early (None:
            batches of `batch_size` whatever the lengths). Padding costs decoder time, and a row alone lets
            the decoder skip the padding mask (causal attention computes half the score matrix).
        max_length: cut sequences to this many positions (default: the processor's `max_length`).
        max_batch_tokens: most decoder positions (rows x longest row) in a micro-batch: bounds a job's peak
            memory by the budget, not by its longest rows (a longer row runs alone). None: no budget.
        compile: compile the vision and decoder layers with `torch.compile` (`unifilter_hf.compilation`); the
            first batches pay the compile time. Falls back to eager, with one warning, where torch cannot.
        dtype: run the model in this dtype (`"bfloat16"`, `"float16"` on GPUs, `"float32"` or a `torch.dtype`);
            None keeps the model's own.
        prepare_workers: threads that prepare the next micro-batches (tokens, image pixels) while the model
            runs the current one (`unifilter_hf.host_threads`). None: none on a CPU, up to 4 on a GPU, which
            would otherwise wait on the host.

    Every door (pipeline, `datasets` callables, `score`, `curate`) scores through :meth:`score_read`; the
    settings the commands and callables share are `unifilter_hf.scoring_settings.ScoringSettings`.
    """

    def __init__(
        self,
        model,
        processor,
        *,
        batch_size: int = 8,
        device: str | torch.device | None = None,
        columns: ColumnMap | Mapping[str, str] | None = None,
        max_images: int | None = None,
        image_timeout: float = 10.0,
        on_image_error: ImageErrorPolicy = "fail_if_all",
        read_workers: int = 8,
        max_padding: float | None = 0.1,
        max_length: int | None = None,
        image_root: str | os.PathLike | None = None,
        allow_local_files: bool | tuple[str, ...] | None = None,
        allow_private_urls: bool | tuple[str, ...] | None = None,
        max_batch_tokens: int | None = None,
        compile: bool = False,
        dtype: str | torch.dtype | None = None,
        prepare_workers: int | None = None,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if max_batch_tokens is not None and max_batch_tokens < 1:
            raise ValueError(f"max_batch_tokens must be at least 1, got {max_batch_tokens}")
        if prepare_workers is not None and prepare_workers < 0:
            raise ValueError(f"prepare_workers must be 0 or more, got {prepare_workers}")
        one_thread_in_forked_children()
        self.model = model.eval() if device is None else model.eval().to(device)
        self.dtype = resolve_dtype(dtype, self.model.device)
        if self.dtype is not None and self.model.dtype != self.dtype:
            self.model.to(self.dtype)
        self.max_batch_tokens = max_batch_tokens
        self.compile = compile
        self._forward = forward_fn(self.model, compile)
        self.processor = processor
        self.batch_size = batch_size
        self.columns = None if columns is None else ColumnMap.coerce(columns)
        self.row_options = {"max_images": max_images, "timeout": image_timeout, "on_image_error": on_image_error,
                            "image_root": None if image_root is None else os.path.abspath(image_root),
                            "allow_local_files": allow_local_files, "allow_private_urls": allow_private_urls}
        self.read_workers = read_workers
        self.max_padding = max_padding
        self.max_length = max_length
        self.prepare_workers = prepare_workers

    @classmethod
    def from_pretrained(cls, name_or_path: str | None = None, *, device: str | None = None, **kwargs):
        """Load model and processor; CPU runs fp32, CUDA bf16 (`dtype=` to choose: bf16 matmuls are slow on
        CPUs without AMX; with AMX, bf16 scored 2.5-3x faster than fp32, scores within ~0.01).

        Official checkpoints load too (converted in memory). A model that cannot be found fails with one
        line naming it and how to choose another.
        """
        from transformers import AutoModelForSequenceClassification, AutoProcessor

        name_or_path = str(name_or_path or default_model_id())
        ensure_model_available(name_or_path)
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = resolve_dtype(kwargs.get("dtype"), torch.device(device)) or (
            torch.bfloat16 if str(device).startswith("cuda") else torch.float32)
        try:
            model = AutoModelForSequenceClassification.from_pretrained(name_or_path, dtype=dtype)
            processor = AutoProcessor.from_pretrained(name_or_path)
        except (OSError, ValueError) as err:
            raise ModelNotFoundError(name_or_path, err) from err
        return cls(model, processor, device=device, **kwargs)

    @property
    def device(self) -> torch.device:
        return self.model.device

    def options(self) -> dict:
        """The reading and batching options of this scorer: `QualityScorer(model, processor, **options)`."""
        return {
            "batch_size": self.batch_size, "columns": self.columns, "max_images": self.row_options["max_images"],
            "image_timeout": self.row_options["timeout"], "on_image_error": self.row_options["on_image_error"],
            "read_workers": self.read_workers, "max_padding": self.max_padding, "max_length": self.max_length,
            "image_root": self.row_options["image_root"],
            "allow_local_files": self.row_options["allow_local_files"],
            "allow_private_urls": self.row_options["allow_private_urls"],
            "max_batch_tokens": self.max_batch_tokens, "compile": self.compile, "dtype": self.dtype,
            "prepare_workers": self.prepare_workers,
        }

    def with_options(self, **changes) -> QualityScorer:
        """This scorer, or one sharing its model and processor with `changes` to its `options()`."""
        unknown = sorted(set(changes) - set(self.options()))
        if unknown:
            raise TypeError(f"unknown scorer option(s) {unknown}; valid: {', '.join(self.options())}")
        options = {**self.options(), **changes}
        if options == self.options():
            return self
        return QualityScorer(self.model, self.processor, **options)

    def score_rows(
        self, rows: Sequence[Mapping], columns: ColumnMap | Mapping[str, str] | None = None
    ) -> list[ScoreRecord]:
        """Score raw rows (captions, OBELICS documents, mmc4, webdataset); bad rows get an error record.

        `columns` overrides the scorer's column map for this call; without either, each row is detected.
        """
        columns = self.columns if columns is None else columns
        records = self.score_read(self._read(rows, columns))
        _warn_about_lost_images(records)
        return records

    def score_read(self, read: Sequence[tuple[Sample | None, str | None]]) -> list[ScoreRecord]:
        """The one batch path: rows already read, ``(sample, None)`` or ``(None, reason)`` each -> records in order.

        Every door ends here: `score_rows` (pipeline, `datasets` callables, `score`) after reading rows in
        threads, the curation engines after decoding a window (in worker processes or not). The samples are
        planned into length-sorted micro-batches and scored by `score_samples` (a failed micro-batch is
        retried row by row); a row that could not be read gets a NaN record with its reason.

        Example:
            >>> from unifilter_hf.tiny import tiny_model_and_processor
            >>> [r.error for r in QualityScorer(*tiny_model_and_processor()).score_read([(None, "bad row")])]
            ['bad row']
        """
        good = [(i, sample) for i, (sample, _) in enumerate(read) if sample is not None]
        scored = dict(zip([i for i, _ in good], self.score_samples([s for _, s in good])))
        return [scored[i] if i in scored else ScoreRecord.failed(reason) for i, (_, reason) in enumerate(read)]

    def _read(self, rows: Sequence[Mapping], columns) -> list[tuple[Sample | None, str | None]]:
        def read(row):
            return try_to_sample(row, columns, **self.row_options)

        if self.read_workers <= 1 or len(rows) <= 1:
            return [read(row) for row in rows]
        # Threads, not processes: the time goes to waiting on URLs and to Pillow's decoders, which release
        # the GIL; every limit of load_image (timeouts, size caps) applies per fetch as before.
        with ThreadPoolExecutor(min(self.read_workers, len(rows))) as pool:
            return list(pool.map(read, rows))

    def score_samples(self, samples: Sequence[Sample]) -> list[ScoreRecord]:
        """Score samples in length-sorted micro-batches (`batch_plan`); results in input order.

        The next micro-batches are prepared on `prepare_workers` threads while the model runs (planning has
        already tokenized once on this thread, so the tokenizer's settings are fixed before threads share it).
        """
        records: list[ScoreRecord | None] = [None] * len(samples)
        lengths = self.sequence_lengths(samples)
        chunks = batch_plan(lengths, self.batch_size, self.max_padding, self.max_batch_tokens)
        batches = [[samples[i] for i in chunk] for chunk in chunks]
        workers = self.prepare_workers if self.prepare_workers is not None else default_prepare_workers(self.device)
        for chunk, batch, inputs in zip(chunks, batches, prepared_ahead(batches, self._prepare, workers)):
            for i, record in zip(chunk, self._score_batch(batch, inputs)):
                records[i] = record
        return records

    def sequence_lengths(self, samples: Sequence[Sample]) -> list[int]:
        """Positions each sample will take: exact from the processor, else `estimated_length`."""
        exact = getattr(self.processor, "sequence_lengths", None)  # a processor of older remote code lacks it
        if exact is not None:
            try:
                return exact(samples) if self.max_length is None else exact(samples, max_length=self.max_length)
            except Exception as err:  # noqa: BLE001 - planning only: a bad row fails later, in its own batch
                logger.debug("exact lengths failed (%s); estimating", err)
        return [self.estimated_length(s) for s in samples]

    def estimated_length(self, sample: Sample) -> int:
        """Tokens a sample will take, roughly: image tokens plus ~4 characters per text token."""
        chars = sum(len(t) for t in sample.texts if t)
        return sample.num_images * self.processor.num_image_tokens + chars // 4

    def _prepare(self, samples: list[Sample]):
        """The processor's model inputs for a micro-batch (with `num_images`, the images each row kept)."""
        cut = {} if self.max_length is None else {"max_length": self.max_length}
        return self.processor(samples, return_image_counts=True, **cut)

    @torch.inference_mode()
    def _score_batch(self, samples: list[Sample], inputs=None) -> list[ScoreRecord]:
        """Records of one micro-batch; `inputs` prepared ahead (or the exception preparing raised), else here."""
        try:
            inputs = self._prepare(samples) if inputs is None else inputs
            if isinstance(inputs, Exception):
                raise inputs
            kept = inputs.pop("num_images").tolist()
            out = self._forward(**inputs.to(self.device))
            records = records_from_logits(out.logits, out.scores, getattr(self.model.config, "calibration", None))
        except torch.OutOfMemoryError:
            raise  # a resource problem, not a bad row: let the job lower its batch size
        except Exception as err:  # noqa: BLE001 - one bad row must not fail the others
            if len(samples) > 1:
                return [r for s in samples for r in self._score_batch([s])]
            logger.warning("scoring failed for one row: %s", err)
            return [ScoreRecord.failed(f"model: {type(err).__name__}: {err}"[:160])]
        for record, sample, n_kept in zip(records, samples, kept):
            record.images_dropped = len(sample.meta.get("dropped", ()))
            record.images_cut = sample.num_images - n_kept
        return records


class ModelNotFoundError(UniFilterError, OSError):
    """The model to score with could not be loaded; the message names it and how to pick another."""

    def __init__(self, name_or_path: str, cause: Exception):
        first = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        super().__init__(
            f"cannot load the UniFilter model {name_or_path!r} ({first[:200]}); pass a local checkpoint "
            f"folder or a reachable Hub id with --model / model=, or set {MODEL_ENV_VAR}"
        )


def _warn_about_lost_images(records: Sequence[ScoreRecord]) -> None:
    # Offline or behind a firewall, a whole OBELICS-style set can lose its images: say so loudly, once a call.
    lost = [r for r in records if r.error and "images failed to load" in r.error]
    shortened = sum(1 for r in records if r.ok and (r.images_dropped or r.images_cut))
    if lost:
        logger.warning(
            "%d of %d rows are documents whose images failed to load and were not scored, e.g. %r "
            "(no network? relative paths? see on_image_error)", len(lost), len(records), lost[0].error,
        )
    if shortened:
        logger.info("%d of %d rows were scored without some of their images (see images_dropped / images_cut)",
                    shortened, len(records))


__all__ = [
    "DEFAULT_THRESHOLD",
    "MODEL_ENV_VAR",
    "OFFICIAL_DEFAULT_MODEL",
    "ModelNotFoundError",
    "QualityScorer",
    "ScoreRecord",
    "batch_plan",
    "default_model_id",
    "ensure_model_available",
    "records_from_logits",
]
