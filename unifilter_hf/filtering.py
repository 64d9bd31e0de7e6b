"""One-call curation with `datasets`: `ds.map(unifilter_score)` and `ds.filter(unifilter_keep)`.

Both objects work as written (default model and threshold) and as factories:

    >>> ds = ds.map(unifilter_score, batched=True, batch_size=16)  # doctest: +SKIP
    >>> ds = ds.filter(unifilter_keep(threshold=2.5), batched=True)  # reads the score columns: no rescoring
    ... # doctest: +SKIP

They take single rows or batches, on `Dataset` and streaming `IterableDataset`, of any supported row layout
(captions, OBELICS documents, webdataset, mmc4; see `unifilter_hf.row_layouts`). A row that cannot be scored
gets `unifilter_score = NaN` and a reason in `unifilter_error`; `unifilter_keep` drops such rows unless
`keep_errors=True`, and logs how many it dropped. On a dataset that `unifilter_score` already scored with the
same model and settings, `unifilter_keep` decides from those columns and never runs the model again.

Caching: `datasets` fingerprints a transform by pickling it. These callables pickle as a light *spec* derived
from their `UniFilterSettings` (model identity, the settings that change results, package version), so the
weights are never hashed, a changed model or threshold never hits a stale cache, a changed `batch_size` does
not recompute, and `num_proc` workers reuse the loaded model (forked) or reload it by name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from PIL import Image as PILImage

from .batch_formats import as_columns, is_frame, is_pipeline
from .fingerprint import model_fingerprint
from .host_threads import one_thread_in_forked_children
from .image_conversion import is_array
from .levels import NO_LEVEL, NUM_LEVELS, is_regression
from .row_layouts import ColumnMap, SchemaError
from .scoring import DEFAULT_THRESHOLD, QualityScorer, ScoreRecord, default_model_id
from .scoring_settings import ScoringSettings

logger = logging.getLogger(__name__)

_LIVE: weakref.WeakValueDictionary[str, _UniFilterCallable] = weakref.WeakValueDictionary()
# The columns `unifilter_score` writes; `unifilter_fingerprint` says which model and settings made them.
SCORE_COLUMNS = (
    "unifilter_score", "unifilter_level", "unifilter_error", "unifilter_images_dropped", "unifilter_images_cut",
    "unifilter_fingerprint",
)


@dataclass(frozen=True)
class UniFilterSettings(ScoringSettings):
    """The settings of `unifilter_score` / `unifilter_keep`: the scoring settings plus the filter's own.

    Every `ScoringSettings` field (model, device, batch_size, columns, max_images, image_timeout,
    on_image_error, read_workers, max_padding; see `unifilter_hf.scoring_settings`) and:

    Attributes:
        threshold: `unifilter_keep` keeps rows scoring at least this (default 2.0: levels 2 and 3).
        keep_errors: `unifilter_keep` also keeps rows that could not be scored.

    Example:
        >>> UniFilterSettings(threshold=2.5).replace(batch_size=16).batch_size
        16
        >>> try:
        ...     UniFilterSettings().replace(treshold=1.0)
        ... except TypeError as err:
        ...     print(str(err)[:46])
        unknown UniFilter setting(s) ['treshold']; val
    """

    threshold: float = DEFAULT_THRESHOLD
    keep_errors: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.threshold, int | float) or math.isnan(self.threshold):
            raise ValueError(f"threshold must be a number, got {self.threshold!r}")

    @classmethod
    def of(cls, settings: ScoringSettings | None) -> UniFilterSettings:
        """`settings` as `UniFilterSettings` (a plain `ScoringSettings` gets the default threshold)."""
        if settings is None or isinstance(settings, cls):
            return settings or cls()
        return cls(**{f.name: getattr(settings, f.name) for f in dataclasses.fields(ScoringSettings)})


class _UniFilterCallable:
    """Shared machinery: lazy scorer, batch/row dispatch, factory calls, light pickling."""

    def __init__(self, model: Any = None, *, processor: Any = None, fingerprint: str | None = None,
                 settings: ScoringSettings | None = None, **options: Any):
        settings = UniFilterSettings.of(settings).replace(**options)
        model = settings.model if model is None else model
        if is_pipeline(model):  # a `pipeline("multimodal-quality-scoring")` brings its model and processor
            model, processor = model.model, processor or model.processor
        # `settings.model` names the model when it has a name; an in-memory model or a scorer is held as is.
        named = isinstance(model, (str, os.PathLike))
        self.settings = settings.replace(model=os.fspath(model) if named else None)
        self._model, self._processor, self._fingerprint = model, processor, fingerprint
        self._scorer: QualityScorer | None = None
        self._scorer_source: str | None = None  # the default model the scorer was loaded for
        self._identities: dict[str, str] = {}
        self._configured: dict[str, _UniFilterCallable] = {}
        self._checked_columns: set[tuple[str, ...]] = set()

    # -- factory / dispatch ----------------------------------------------------------------------------------
    def __call__(self, batch: Any = None, indices: Any = None, **config: Any):
        if is_frame(batch):  # with_format("pandas"): a frame of the new columns (one row when not batched)
            result = self(as_columns(batch), indices, **config)
            return type(batch)(result) if isinstance(result, dict) else result
        batch = as_columns(batch)  # numpy / torch formatted batches -> plain columns
        if batch is None or not isinstance(batch, Mapping):
            # `unifilter_keep(model=..., threshold=...)` or `unifilter_keep("org/model")`: a new configured one.
            if batch is not None:
                self._check_model_argument(batch, indices)
                config["model"] = batch
            return self._derived(config)
        if config:  # `ds.filter(unifilter_keep, fn_kwargs={"threshold": 0.1})`: honoured, not ignored
            if "model" in config:
                raise TypeError("pass model= when creating the callable (unifilter_score(model=...)), not per batch")
            key = json.dumps(config, sort_keys=True, default=repr)
            if key not in self._configured:
                # The loaded model is shared; reading and batching follow the configured settings.
                settings = self.settings.replace(**config)
                scorer = self.scorer.with_options(**settings.scorer_options())
                self._configured[key] = self._derived({**config, "model": scorer,
                                                       "fingerprint": self.model_identity()})
            return self._configured[key](batch, indices)
        return self._apply(batch, self._columns_for(batch))

    def _check_model_argument(self, obj: Any, indices: Any) -> None:
        """A positional argument must be a model; `unifilter_keep(2.5)` or `input_columns=` get a clear error."""
        from torch import nn

        named = isinstance(obj, str) and obj.strip() and not any(c.isspace() for c in obj.strip())
        model_like = named or isinstance(obj, (os.PathLike, nn.Module, QualityScorer)) or is_pipeline(obj)
        if model_like and indices is None:
            return
        name = "unifilter_keep" if isinstance(self, UniFilterKeep) else "unifilter_score"
        raise TypeError(
            f"{name}({str(obj)[:40]!r}{', ...' if indices is not None else ''}): a positional argument is the model "
            f"(a path, Hub id, model or pipeline); pass settings by name, e.g. {name}(threshold=2.5). Called by "
            "datasets with input_columns=? Drop it: the callable reads whole rows (pass columns={'image': ..., "
            "'text': ...} to name the columns)."
        )

    def _derived(self, config: dict) -> _UniFilterCallable:
        settings, given = self.settings, config.pop("settings", None)
        if isinstance(given, UniFilterSettings):
            settings = given
        elif given is not None:  # a ScoringSettings (`score`'s, `curate`'s): this callable's filter settings stay
            settings = settings.replace(**{name: getattr(given, name) for name in ScoringSettings.names()})
        if given is not None and given.model is not None:
            config.setdefault("model", given.model)
        model = config.pop("model", self._model)
        processor = config.pop("processor", self._processor)
        fingerprint = config.pop("fingerprint", self._fingerprint if model is self._model else None)
        return type(self)(model, processor=processor, fingerprint=fingerprint, settings=settings.replace(**config))

    def _columns_for(self, batch: Mapping) -> ColumnMap:
        columns = self.settings.columns or ColumnMap.detect(batch.keys())
        key = tuple(sorted(map(str, batch.keys())))
        if key not in self._checked_columns:  # once per column set: before any row is read
            missing = [c for c in columns.columns if c not in batch]
            if missing:
                raise SchemaError(
                    f"columns {missing} are not in the dataset (it has {sorted(map(str, batch.keys()))}); "
                    "pass columns={...} with existing column names"
                )
            self._checked_columns.add(key)
        return columns

    def _apply(self, batch: Mapping, columns: ColumnMap):
        batched = _is_batch(batch, columns)
        rows = _split_batch(batch) if batched else [batch]
        _hint_decoded_images(rows[0] if rows else {})
        return self._output(self.scorer.score_rows(rows, columns), batched)

    @property
    def scorer(self) -> QualityScorer:
        # The default model is read at use, so `unifilter_score` as written follows $UNIFILTER_MODEL.
        source = default_model_id() if self._model is None else None
        if self._scorer is None or source != self._scorer_source:
            self._scorer_source = source
            # A scorer passed in is used as it is (its options are the caller's); anything else is built here.
            model = self._model
            if isinstance(model, QualityScorer):
                self._scorer = model
            else:
                self._scorer = self.settings.build_scorer(source if model is None else model, self._processor)
        return self._scorer

    def _output(self, records: list[ScoreRecord], batched: bool):
        raise NotImplementedError

    # -- fingerprint / pickling ------------------------------------------------------------------------------
    def model_identity(self) -> str:
        """The model's fingerprint (see `unifilter_hf.fingerprint.model_fingerprint`), computed once per model."""
        if self._fingerprint:
            return self._fingerprint
        model = self._model if self._model is not None else default_model_id()
        key = str(model) if isinstance(model, (str, os.PathLike)) else "in-memory"
        if key not in self._identities:
            self._identities[key] = model_fingerprint(model)
        return self._identities[key]

    def score_fingerprint(self) -> str:
        """A short id of what determines the scores: model, scoring settings, package version."""
        from .version import __version__

        blob = json.dumps([self.model_identity(), self.settings.scoring_identity(), __version__], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def spec(self) -> dict:
        """What identifies this transform's results (its pickled form and `datasets` fingerprint)."""
        raise NotImplementedError

    def __reduce__(self):
        one_thread_in_forked_children()  # pickled for datasets' num_proc workers, which fork after this
        spec = json.dumps(self.spec(), sort_keys=True)
        # Equal specs mean equal results, so equal objects may stand in for each other when unpickled.
        _LIVE[spec] = self
        source = self._model if isinstance(self._model, (str, os.PathLike)) else None
        # Only what changes results is pickled (datasets hashes this): a new batch size reuses the cache.
        return (_rebuild, (type(self), None if source is None else str(source), spec))


def _hint_decoded_images(row: Mapping) -> None:
    """Once per process: name `undecode_images` when `datasets` hands us images it decoded itself.

    Such a column is decoded inside `datasets` before any callable sees the row, so one corrupt file ends the
    job there, out of our reach; `datasets`' own switch, `Image(decode=False)`, avoids that.
    """
    global _HINTED_DECODED
    if _HINTED_DECODED:
        return
    values = [v for value in row.values() for v in (value if isinstance(value, list) else [value])]
    if any(isinstance(v, PILImage.Image) for v in values):
        _HINTED_DECODED = True
        logger.warning("the dataset's image columns are decoded by `datasets`, where one corrupt image stops the "
                       "job; `ds = unifilter_hf.undecode_images(ds)` makes such rows error rows instead")


_HINTED_DECODED = False


def _is_batch(batch: Mapping, columns: ColumnMap) -> bool:
    first = batch[columns.columns[0]]
    if columns.schema == "caption":  # a list of images, or a stack of them (N, C, H, W) / (N, H, W, C)
        return isinstance(first, list) or (is_array(first) and first.ndim == 4)
    # A single document holds strings/images/None in its slots; a batch holds one list per row.
    return any(isinstance(v, (list, tuple)) for c in columns.columns for v in (batch[c] or ()))


def _split_batch(batch: Mapping) -> list[dict]:
    lengths = {len(v) for v in batch.values()}
    if len(lengths) != 1:
        raise ValueError(f"batch columns differ in length: {sorted(lengths)}")
    return [{k: v[i] for k, v in batch.items()} for i in range(lengths.pop())]


def _rebuild(cls, source, spec_json):
    # The same process or a forked datasets worker still holds the live object (model already loaded).
    live = _LIVE.get(spec_json)
    if live is not None:
        return live
    spec = json.loads(spec_json)
    if source is None and spec["model"] != model_fingerprint(default_model_id()):
        raise RuntimeError(
            "this UniFilter callable holds an in-memory model that cannot be sent to another process; "
            "pass model='path/or/hub-id' when using num_proc"
        )
    # A fresh process: the settings that change results come from the spec (batch size and device default).
    return cls(source, **spec["settings"])


class UniFilterScore(_UniFilterCallable):
    """`ds.map` callable adding `unifilter_score` (float), `unifilter_level` (int), `unifilter_error` (str),
    `unifilter_images_dropped` / `unifilter_images_cut` (int, images a document lost while being read / to
    the length limit) and `unifilter_fingerprint` (which model and settings scored the row), plus
    `unifilter_probs` for a 4-level head. Row count is always preserved. A row that could not be scored has
    score NaN, level -1, probs NaN and a non-empty error; a scored row has an empty error."""

    def spec(self) -> dict:
        from .version import __version__

        return {"kind": "UniFilterScore", "model": self.model_identity(),
                "settings": self.settings.scoring_identity(), "version": __version__}

    def _output(self, records: list[ScoreRecord], batched: bool):
        # No None values: Arrow fixes a column's type from the first batch written, and a first batch of
        # only failed (or only good) rows would make the column null-typed and break later batches.
        fingerprint = self.score_fingerprint()
        columns = {
            "unifilter_score": [r.score for r in records],
            "unifilter_level": [NO_LEVEL if r.level is None else r.level for r in records],
            "unifilter_error": [r.error or "" for r in records],
            "unifilter_images_dropped": [r.images_dropped for r in records],
            "unifilter_images_cut": [r.images_cut for r in records],
            "unifilter_fingerprint": [fingerprint] * len(records),
        }
        config = self.scorer.model.config
        if not is_regression(config) or getattr(config, "calibration", None):  # per-level probabilities
            levels = max(config.num_labels, NUM_LEVELS)
            columns["unifilter_probs"] = [r.probs or [math.nan] * levels for r in records]
        return columns if batched else {k: v[0] for k, v in columns.items()}


class UniFilterKeep(_UniFilterCallable):
    """`ds.filter` predicate: keep rows scored at least `threshold` (default 2.0); error rows are dropped
    (and counted in the log) unless `keep_errors=True`. On rows that already carry `unifilter_score` columns
    from the same model and settings it decides from them, without running the model."""

    _dropped_unbatched = 0

    def spec(self) -> dict:
        from .version import __version__

        settings = {**self.settings.scoring_identity(), "threshold": self.settings.threshold,
                    "keep_errors": self.settings.keep_errors}
        return {"kind": "UniFilterKeep", "model": self.model_identity(), "settings": settings,
                "version": __version__}

    def _columns_for(self, batch: Mapping) -> ColumnMap | None:
        if self._scored_here(batch):
            return None  # the score columns decide; the source columns are not read
        return super()._columns_for(batch)

    def _scored_here(self, batch: Mapping) -> bool:
        stamp = batch.get("unifilter_fingerprint")
        if stamp is None or "unifilter_score" not in batch:
            return False
        first = stamp[0] if isinstance(stamp, list) and stamp else stamp
        return first == self.score_fingerprint()

    def _apply(self, batch: Mapping, columns: ColumnMap | None):
        if columns is not None:
            return super()._apply(batch, columns)
        scores, errors = batch["unifilter_score"], batch["unifilter_error"]
        batched = isinstance(scores, list)
        scores, errors = (scores, errors) if batched else ([scores], [errors])
        records = [ScoreRecord(score=s, error=e or None) for s, e in zip(scores, errors)]
        return self._output(records, batched)

    def _output(self, records: list[ScoreRecord], batched: bool):
        threshold, keep_errors = self.settings.threshold, self.settings.keep_errors
        mask = [r.keep(threshold) or (keep_errors and not r.ok) for r in records]
        errors = [r.error for r in records if not r.ok]
        if errors and not keep_errors:
            self._log_dropped(errors, batched)
        assert len(mask) == len(records)  # one decision per row, never more or fewer
        return mask if batched else mask[0]

    def _log_dropped(self, errors: list[str], batched: bool) -> None:
        if batched:
            logger.warning("unifilter_keep dropped %d row(s) that could not be scored, e.g. %r",
                           len(errors), errors[0])
            return
        # One row per call: log the first one and then at 10, 100, 1000, ... rows, not once per row.
        self._dropped_unbatched += 1
        count = self._dropped_unbatched
        if count == 1 or math.log10(count).is_integer():
            logger.warning("unifilter_keep has dropped %d row(s) that could not be scored so far, e.g. %r "
                           "(keep_errors=True keeps them)", count, errors[0])


unifilter_score = UniFilterScore()
unifilter_keep = UniFilterKeep()

__all__ = [
    "SCORE_COLUMNS",
    "UniFilterKeep",
    "UniFilterScore",
    "UniFilterSettings",
    "model_fingerprint",
    "unifilter_keep",
    "unifilter_score",
]
