"""The records behind the ``UniFilterSynthetic`` builder, from each kind of source.

Sources (``source=``):
- ``"bundled"``: the bundled photographs and documents, levels made in memory by the rule-based backend.
- a folder written by ``unifilter-hf synth`` (has ``records.jsonl``; see :mod:`.records`).
- the released ``weizhiwang/unifilter_train_data`` layout (see :mod:`.released`).

Every source gives :class:`~.records.SynthRecord` objects whose images are absolute paths or lazy loaders,
with ``provenance.source`` naming where they came from.

Example:
    >>> rows = load_rows("bundled")
    >>> sorted({r.kind for r in rows}), rows[0].provenance.source
    (['caption', 'document'], 'bundled')
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import replace
from pathlib import Path

from .records import RECORDS, SynthRecord, read_records
from .released import released_files, released_records
from .result_records import records_from_result

logger = logging.getLogger(__name__)


def load_rows(source: str, image_folder: str | None = None, seed: int = 0) -> list[SynthRecord]:
    """All records of a source, both kinds (see the module docstring for source kinds).

    ``image_folder`` is the root of a released layout's relative image paths (default: the JSON's folder);
    ``seed`` seeds the rule-based backend for ``"bundled"``.
    """
    if source == "bundled":
        return _bundled_rows(seed)
    path = Path(source)
    if path.is_dir() and (path / RECORDS).is_file():
        return _synth_rows(path)
    if path.exists():
        folder = Path(image_folder) if image_folder else (path if path.is_dir() else path.parent)
        return released_records(path, folder)
    raise FileNotFoundError(f"source {source!r} is neither 'bundled', a synth folder nor a released-layout path")


def _synth_rows(folder: Path) -> list[SynthRecord]:
    return [replace(rec.with_root(folder), provenance=replace(rec.provenance, source=folder.name))
            for rec in read_records(folder / RECORDS)]


def _bundled_rows(seed: int) -> list[SynthRecord]:
    from .backends.rule_based import RuleBasedBackend
    from .bundled import bundled_items

    items = bundled_items("both")
    backend = RuleBasedBackend(seed=seed)
    backend.prepare(items)
    rows = []
    for res in backend.generate(items):
        if not res.ok:  # the bundled set is tested to have none; never emit a partial group
            logger.warning("bundled source %s failed: %s", res.item.id, res.error)
            continue
        res.provenance = replace(res.provenance, source="bundled")
        rows += records_from_result(res, lambda i, res=res: res.images[i])  # lazy loaders, embedded later
    return rows


def source_fingerprint(source: str, image_folder: str | None) -> str:
    """Changes when the source data changes, so the builder cache never serves stale data."""
    if source == "bundled":
        from .backends.rule_based import RULES_VERSION
        from .bundled import bundled_documents, bundled_photos

        blob = json.dumps([RULES_VERSION, bundled_photos(), bundled_documents()], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]
    path = Path(source)
    files = [path / RECORDS] if (path / RECORDS).is_file() else (released_files(path) if path.exists() else [])
    parts = [f"{f.resolve()}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files]
    return hashlib.sha256("|".join([*parts, str(image_folder)]).encode()).hexdigest()[:16]
