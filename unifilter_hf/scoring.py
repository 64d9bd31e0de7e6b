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
from dataclasses import asdict, dataclass

import torch

from .row_layouts import ColumnMap, try_to_sample
from .sample import Sample

logger = logging.getLogger(__name__)

# The task's default checkpoint; UNIFILTER_MODEL overrides it everywhere (tests point it at a local folder).
OFFICIAL_DEFAULT_MODEL = "weizhiwang/UniFilter-Qwen2.5-1.5B"
MODEL_ENV_VAR = "UNIFILTER_MODEL"
DEFAULT_THRESHOLD = 2.0


def default_model_id() -> str:
    """The model used when none is given: `$UNIFILTER_MODEL`, else the official Qwen2.5-1.5B checkpoint."""
    return os.environ.get(MODEL_ENV_VAR) or OFFICIAL_DEFAULT_MODEL


@dataclass
class ScoreRecord:
    """One scored row. `score` is NaN and `error` holds a short reason when the row could not be scored."""

    score: float
    level: int | None = None
    probs: list[float] | None = None
    error: str | None = None

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


def records_from_logits(logits: torch.Tensor, scores: torch.Tensor) -> list[ScoreRecord]:
    """Records for a batch of model outputs.

    Regression heads: `level = round(clamp(score, 0, 3))`, the official validation reading.
    Classification heads: `level` is the argmax level and `probs` the per-level probabilities.
    """
    logits, scores = logits.float().cpu(), scores.float().cpu()
    if logits.shape[-1] == 1:
        return [ScoreRecord(score=s, level=int(round(min(max(s, 0.0), 3.0)))) for s in scores.tolist()]
    probs = logits.softmax(-1)
    return [
        ScoreRecord(score=s, level=int(p.argmax()), probs=p.tolist()) for s, p in zip(scores.tolist(), probs)
    ]


class QualityScorer:
    """Scores samples or dataset rows with a UniFilter model, batch by batch, never failing a whole batch.

    Rows inside one call are sorted by estimated length (image tokens + text) into micro-batches of
    `batch_size`, so padding stays small; results come back in input order and do not depend on batching.
    A row that cannot be read, or whose micro-batch fails in the model, gets a NaN score and a reason.

    Args:
        model: a `UniFilterForQualityScoring` (moved to `device` if given).
        processor: its `UniFilterProcessor`.
        batch_size: rows per forward pass.
        columns: a `ColumnMap` (or dict) naming the row columns; detected from the first row otherwise.
        max_images / image_timeout: passed to `samples.to_sample`.
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
    ):
        self.model = model.eval() if device is None else model.eval().to(device)
        self.processor = processor
        self.batch_size = batch_size
        self.columns = None if columns is None else ColumnMap.coerce(columns)
        self.row_options = {"max_images": max_images, "timeout": image_timeout}

    @classmethod
    def from_pretrained(cls, name_or_path: str | None = None, *, device: str | None = None, **kwargs):
        """Load model and processor; CPU runs fp32, CUDA bf16 (bf16 matmuls are very slow on CPUs)."""
        from transformers import AutoProcessor

        from .modeling_unifilter import UniFilterForQualityScoring

        name_or_path = name_or_path or default_model_id()
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.bfloat16 if str(device).startswith("cuda") else torch.float32
        model = UniFilterForQualityScoring.from_pretrained(name_or_path, dtype=dtype)
        processor = AutoProcessor.from_pretrained(name_or_path)
        return cls(model, processor, device=device, **kwargs)

    @property
    def device(self) -> torch.device:
        return self.model.device

    def score_rows(
        self, rows: Sequence[Mapping], columns: ColumnMap | Mapping[str, str] | None = None
    ) -> list[ScoreRecord]:
        """Score raw rows (captions, OBELICS documents, mmc4, webdataset); bad rows get an error record.

        `columns` overrides the scorer's column map for this call; without either, each row is detected.
        """
        columns = self.columns if columns is None else columns
        records: list[ScoreRecord | None] = [None] * len(rows)
        good: list[tuple[int, Sample]] = []
        for i, row in enumerate(rows):
            sample, reason = try_to_sample(row, columns, **self.row_options)
            if sample is None:
                records[i] = ScoreRecord.failed(reason)
            else:
                good.append((i, sample))
        for (i, _), record in zip(good, self.score_samples([s for _, s in good])):
            records[i] = record
        return records

    def score_samples(self, samples: Sequence[Sample]) -> list[ScoreRecord]:
        """Score samples in length-sorted micro-batches; results in input order."""
        order = sorted(range(len(samples)), key=lambda i: self._estimated_length(samples[i]))
        records: list[ScoreRecord | None] = [None] * len(samples)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            for i, record in zip(chunk, self._score_batch([samples[i] for i in chunk])):
                records[i] = record
        return records

    def _estimated_length(self, sample: Sample) -> int:
        # ~4 characters per token is close enough to group rows of similar length.
        chars = sum(len(t) for t in sample.texts if t)
        return sample.num_images * self.processor.num_image_tokens + chars // 4

    @torch.inference_mode()
    def _score_batch(self, samples: list[Sample]) -> list[ScoreRecord]:
        try:
            inputs = self.processor(samples).to(self.device)
            out = self.model(**inputs)
            return records_from_logits(out.logits, out.scores)
        except torch.OutOfMemoryError:
            raise  # a resource problem, not a bad row: let the job lower its batch size
        except Exception as err:  # noqa: BLE001 - one bad row must not fail the others
            if len(samples) > 1:
                return [r for s in samples for r in self._score_batch([s])]
            logger.warning("scoring failed for one row: %s", err)
            return [ScoreRecord.failed(f"model: {type(err).__name__}: {err}"[:160])]


__all__ = [
    "DEFAULT_THRESHOLD",
    "MODEL_ENV_VAR",
    "OFFICIAL_DEFAULT_MODEL",
    "QualityScorer",
    "ScoreRecord",
    "default_model_id",
    "records_from_logits",
]
