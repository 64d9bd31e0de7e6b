"""One-call curation with `datasets`: `ds.map(unifilter_score)` and `ds.filter(unifilter_keep)`.

Both objects work as written (default model and threshold) and as factories:

    >>> ds = ds.map(unifilter_score, batched=True, batch_size=16)  # doctest: +SKIP
    >>> ds = ds.filter(unifilter_keep(model="my/checkpoint", threshold=2.5), batched=True)  # doctest: +SKIP

They take single rows or batches, on `Dataset` and streaming `IterableDataset`, of any supported row layout
(captions, OBELICS documents, webdataset, mmc4; see `unifilter_hf.row_layouts`). A row that cannot be scored gets
`unifilter_score = NaN` and a reason in `unifilter_error`; `unifilter_keep` drops such rows unless
`keep_errors=True`, and logs how many it dropped.

Caching: `datasets` fingerprints a transform by pickling it. These callables pickle as a light *spec* (model
identity, settings, package version), so the weights are never hashed, a changed model or threshold never
hits a stale cache, and `num_proc` workers reload the model by name instead of receiving a pickled copy.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import os
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import try_to_load_from_cache

from .row_layouts import ColumnMap
from .scoring import DEFAULT_THRESHOLD, QualityScorer, ScoreRecord, default_model_id

logger = logging.getLogger(__name__)

_SAMPLED_VALUES = 64  # values read per large tensor when fingerprinting an in-memory model
_SMALL_TENSOR = 1 << 16  # tensors up to this size are hashed whole (heads, norms, biases)
_LIVE: weakref.WeakValueDictionary[str, _UniFilterCallable] = weakref.WeakValueDictionary()


def model_fingerprint(model: Any) -> str:
    """A cheap, deterministic identity of a model: never hashes the full weights.

    - a local folder: its `config.json` plus, per weights file, name, size, mtime and safetensors header;
    - a Hub id: the id and the commit of its locally cached snapshot, if any;
    - an in-memory model: its source identity plus every small tensor and a fixed sample of values of each
      large one (a change confined to unsampled positions of a large tensor is not seen: pass
      `fingerprint=` to the callables in that case).

    Example:
        >>> from unifilter_hf.tiny import tiny_model_and_processor
        >>> len(model_fingerprint(tiny_model_and_processor()[0]))
        64
    """
    digest = hashlib.sha256()
    if isinstance(model, QualityScorer):
        model = model.model
    if isinstance(model, (str, os.PathLike)):
        digest.update(_source_identity(str(model)).encode())
        return digest.hexdigest()
    config = model.config
    digest.update(_source_identity(config.name_or_path or "").encode())
    digest.update(str(getattr(config, "_commit_hash", "")).encode())
    digest.update(config.to_json_string(use_diff=False).encode())
    with torch.no_grad():
        for name, tensor in itertools.chain(model.named_parameters(), model.named_buffers()):
            flat = tensor.detach().reshape(-1)
            if flat.numel() > _SMALL_TENSOR:
                index = torch.arange(_SAMPLED_VALUES, device=flat.device) * (flat.numel() - 1) // (_SAMPLED_VALUES - 1)
                flat = flat[index]
            digest.update(name.encode())
            digest.update(str(tuple(tensor.shape)).encode())
            digest.update(flat.float().cpu().numpy().tobytes())
    return digest.hexdigest()


def _source_identity(name_or_path: str) -> str:
    path = Path(name_or_path)
    if not path.is_dir():
        # The locally cached snapshot's commit, when there is one: a new upstream revision is a new identity.
        try:
            cached = try_to_load_from_cache(name_or_path, "config.json")
        except ValueError:  # not a valid repo id
            cached = None
        commit = Path(cached).parent.name if isinstance(cached, str) else "uncached"
        return f"hub:{name_or_path}@{commit}"
    parts = [f"dir:{path.resolve()}"]
    for file in sorted(path.iterdir()):
        if file.name == "config.json" or file.name.endswith("_config.json"):
            parts.append(file.read_text())
        elif file.suffix in (".safetensors", ".bin"):
            stat = file.stat()
            parts.append(f"{file.name}:{stat.st_size}:{stat.st_mtime_ns}")
            if file.suffix == ".safetensors":
                with open(file, "rb") as handle:  # the JSON header: tensor names, dtypes, shapes, offsets
                    size = int.from_bytes(handle.read(8), "little")
                    parts.append(handle.read(min(size, 1 << 24)).decode("utf-8", "replace"))
    return "\n".join(parts)


class _UniFilterCallable:
    """Shared machinery: lazy scorer, batch/row dispatch, factory calls, light pickling."""

    def __init__(
        self,
        model: Any = None,
        *,
        processor: Any = None,
        threshold: float = DEFAULT_THRESHOLD,
        batch_size: int = 8,
        columns: ColumnMap | Mapping[str, str] | None = None,
        keep_errors: bool = False,
        max_images: int | None = None,
        device: str | None = None,
        fingerprint: str | None = None,
    ):
        self.settings = {
            "threshold": threshold,
            "batch_size": batch_size,
            "columns": None if columns is None else vars(ColumnMap.coerce(columns)),
            "keep_errors": keep_errors,
            "max_images": max_images,
            "device": device,
        }
        self._model, self._processor, self._fingerprint = model, processor, fingerprint
        self._scorer: QualityScorer | None = None

    # -- factory / dispatch ----------------------------------------------------------------------------------
    def __call__(self, batch: Any = None, indices: Any = None, **config: Any):
        if batch is None or not isinstance(batch, Mapping):
            # `unifilter_keep(model=..., threshold=...)` or `unifilter_keep("org/model")`: a new configured one.
            if batch is not None:
                config["model"] = batch
            merged = {**self.settings, "model": self._model, "processor": self._processor, **config}
            return type(self)(**merged)
        columns = self.settings["columns"]
        columns = ColumnMap.detect(batch.keys()) if columns is None else ColumnMap.coerce(columns)
        batched = _is_batch(batch, columns)
        rows = _split_batch(batch) if batched else [batch]
        return self._output(self.scorer.score_rows(rows, columns), batched)

    @property
    def scorer(self) -> QualityScorer:
        if self._scorer is None:
            model, opts = self._model, {k: self.settings[k] for k in ("batch_size", "max_images")}
            if isinstance(model, QualityScorer):
                self._scorer = model
            elif model is None or isinstance(model, (str, os.PathLike)):
                self._scorer = QualityScorer.from_pretrained(
                    str(model or default_model_id()), device=self.settings["device"], **opts
                )
            else:
                if self._processor is None:
                    raise ValueError("pass processor= together with an in-memory model")
                self._scorer = QualityScorer(model, self._processor, device=self.settings["device"], **opts)
        return self._scorer

    def _output(self, records: list[ScoreRecord], batched: bool):
        raise NotImplementedError

    # -- fingerprint / pickling ------------------------------------------------------------------------------
    def spec(self) -> dict:
        """What identifies this transform's results (used as its pickled form and datasets fingerprint)."""
        from . import __version__

        model = self._model if self._model is not None else default_model_id()
        return {
            "kind": type(self).__name__,
            "model": self._fingerprint or model_fingerprint(model),
            "settings": {k: v for k, v in self.settings.items() if k != "device"},
            "version": __version__,
        }

    def __reduce__(self):
        spec = json.dumps(self.spec(), sort_keys=True)
        # Equal specs mean equal results, so equal objects may stand in for each other when unpickled.
        _LIVE[spec] = self
        source = self._model if isinstance(self._model, (str, os.PathLike)) else None
        return (_rebuild, (type(self), source, self.settings, spec))


def _is_batch(batch: Mapping, columns: ColumnMap) -> bool:
    first = batch[columns.columns[0]] if columns.columns[0] in batch else None
    if columns.schema == "caption":
        return isinstance(first, list)
    # A single document holds strings/images/None in its slots; a batch holds one list per row.
    return any(isinstance(v, (list, tuple)) for c in columns.columns if c in batch for v in (batch[c] or ()))


def _split_batch(batch: Mapping) -> list[dict]:
    lengths = {len(v) for v in batch.values()}
    if len(lengths) != 1:
        raise ValueError(f"batch columns differ in length: {sorted(lengths)}")
    return [{k: v[i] for k, v in batch.items()} for i in range(lengths.pop())]


def _rebuild(cls, source, settings, spec_json):
    # The same process or a forked datasets worker still holds the live object (model already loaded).
    live = _LIVE.get(spec_json)
    if live is not None:
        return live
    if source is None and json.loads(spec_json)["model"] != model_fingerprint(default_model_id()):
        raise RuntimeError(
            "this UniFilter callable holds an in-memory model that cannot be sent to another process; "
            "pass model='path/or/hub-id' when using num_proc"
        )
    return cls(source, **settings)


class UniFilterScore(_UniFilterCallable):
    """`ds.map` callable adding `unifilter_score` (float), `unifilter_level` (int) and `unifilter_error` (str),
    plus `unifilter_probs` for a 4-level head. Row count is always preserved. A row that could not be scored
    has score NaN, level -1, probs NaN and a non-empty error; a scored row has an empty error."""

    def _output(self, records: list[ScoreRecord], batched: bool):
        # No None values: Arrow fixes a column's type from the first batch written, and a first batch of
        # only failed (or only good) rows would make the column null-typed and break later batches.
        columns = {
            "unifilter_score": [r.score for r in records],
            "unifilter_level": [-1 if r.level is None else r.level for r in records],
            "unifilter_error": [r.error or "" for r in records],
        }
        num_labels = self.scorer.model.config.num_labels
        if num_labels > 1:
            columns["unifilter_probs"] = [r.probs or [math.nan] * num_labels for r in records]
        return columns if batched else {k: v[0] for k, v in columns.items()}


class UniFilterKeep(_UniFilterCallable):
    """`ds.filter` predicate: keep rows scored at least `threshold` (default 2.0); error rows are dropped
    (and counted in the log) unless `keep_errors=True`."""

    def _output(self, records: list[ScoreRecord], batched: bool):
        threshold, keep_errors = self.settings["threshold"], self.settings["keep_errors"]
        mask = [r.keep(threshold) or (keep_errors and not r.ok) for r in records]
        errors = [r.error for r in records if not r.ok]
        if errors and not keep_errors:
            logger.warning("unifilter_keep dropped %d row(s) that could not be scored, e.g. %r", len(errors), errors[0])
        assert len(mask) == len(records)  # one decision per row, never more or fewer
        return mask if batched else mask[0]


unifilter_score = UniFilterScore()
unifilter_keep = UniFilterKeep()

__all__ = ["UniFilterKeep", "UniFilterScore", "model_fingerprint", "unifilter_keep", "unifilter_score"]
