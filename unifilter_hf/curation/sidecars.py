"""Score sidecars: one Parquet file per input shard, one row per input row, in source order.

Columns: ``index`` (row position in the shard), ``key`` (the source's ``uid``/``key``/``__key__``/``id``
column, else ``"<shard>:<index>"``), ``kind`` (``caption``/``document``/``unknown``), then every field of the
:class:`~unifilter_hf.scoring.ScoreRecord` as ``record.to_dict()`` gives it (``score``, ``level``, ``probs``,
``error``, and any field added later), so new record fields reach the sidecar without a change here.

Example:
    >>> from unifilter_hf.scoring import ScoreRecord
    >>> table = sidecar_table("s0", [0], ["s0:0"], ["caption"], [ScoreRecord(score=1.5, level=2)])
    >>> table.column_names
    ['index', 'key', 'kind', 'score', 'level', 'probs', 'error', 'images_dropped', 'images_cut']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .manifest import commit, temporary_path

KEY_COLUMNS = ("uid", "key", "__key__", "id")
# Types of the record fields known today; a field added to ScoreRecord later gets an inferred type.
_KNOWN_TYPES = {
    "score": pa.float64(),
    "level": pa.int64(),
    "probs": pa.list_(pa.float64()),
    "error": pa.string(),
}
SELECTION_COLUMNS = ["index", "key", "kind", "score", "error"]


def row_key(row: Mapping, shard: str, index: int) -> str:
    """A stable key: the source's own id column, else shard name and row position.

    Example:
        >>> row_key({"uid": "ab12", "text": "x"}, "part-0", 3), row_key({"text": "x"}, "part-0", 3)
        ('ab12', 'part-0:3')
    """
    for name in KEY_COLUMNS:
        value = row.get(name)
        if value is not None and not isinstance(value, (bytes, dict, list)):
            return str(value)
    return f"{shard}:{index}"


def record_dict(record) -> dict:
    """A record as a plain dict, whatever fields it has."""
    if hasattr(record, "to_dict"):
        return record.to_dict()
    from dataclasses import asdict

    return asdict(record)


def sidecar_table(
    shard: str, indices: Sequence[int], keys: Sequence[str], kinds: Sequence[str], records: Sequence
) -> pa.Table:
    """The sidecar of one shard from its records (columns in a fixed order)."""
    dicts = [record_dict(r) for r in records]
    names = list(dicts[0]) if dicts else list(_KNOWN_TYPES)
    columns = {
        "index": pa.array(indices, pa.int64()),
        "key": pa.array(keys, pa.string()),
        "kind": pa.array(kinds, pa.string()),
    }
    for name in names:
        values = [d.get(name) for d in dicts]
        columns[name] = pa.array(values, _KNOWN_TYPES.get(name))
    return pa.table(columns)


def write_sidecar(path: Path, table: pa.Table) -> None:
    """Write atomically; the file's existence marks the shard as scored."""
    tmp = temporary_path(path)
    pq.write_table(table, tmp, compression="zstd")
    commit(tmp, path)


def read_sidecar(path: Path, columns: list[str] | None = None) -> pa.Table:
    return pq.read_table(path, columns=columns)


class SidecarColumns(Mapping):
    """Shard name -> that shard's :data:`SELECTION_COLUMNS`, read from disk each time it is asked for.

    Selection and the summary visit one shard at a time, so a job holds one shard's columns (plus the 8-16
    bytes a scored row the global cut needs) instead of every shard's keys and errors at once (about 60 bytes
    a row in Arrow: 8 GiB for OBELICS' 141M documents).
    """

    def __init__(self, paths: Mapping[str, Path]):
        self._paths = dict(paths)

    def __getitem__(self, shard: str) -> pa.Table:
        return read_sidecar(self._paths[shard], SELECTION_COLUMNS)

    def __iter__(self):
        return iter(self._paths)

    def __len__(self) -> int:
        return len(self._paths)
