"""Write one shard's curated rows (source columns + ``unifilter_*`` score columns) and its rejected keys.

The source shard is streamed a second time and zipped with its sidecar (same order, same count), so the
curated file keeps every source column and type (``datasets`` Image columns stay Image features) without
holding the shard in memory. The rejected file is the exclusion side-output: ``key``, ``index``, ``kind``,
``score`` and ``reason``. Both are written side by side; the rejected file is committed first and the curated
file last: a curated file that exists marks the shard as done for the current selection.

Example:
    >>> import pyarrow as pa
    >>> score_fields(pa.schema([("index", pa.int64()), ("key", pa.string()), ("kind", pa.string()),
    ...                         ("score", pa.float64())])).names
    ['unifilter_score']
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import pyarrow as pa
import pyarrow.parquet as pq

from ..sources import Shard
from ..sources.encodable import encodable
from .manifest import Layout, commit, temporary_path
from .selection import decide
from .settings import CurationError

PREFIX = "unifilter_"
_CHUNK = 256
_REJECTED_SCHEMA = pa.schema(
    [("key", pa.string()), ("index", pa.int64()), ("kind", pa.string()), ("score", pa.float64()),
     ("reason", pa.string())]
)


def score_fields(sidecar_schema: pa.Schema) -> pa.Schema:
    """The record columns of a sidecar, renamed ``unifilter_<field>`` for the curated data."""
    skip = {"index", "key", "kind"}
    return pa.schema([pa.field(PREFIX + f.name, f.type) for f in sidecar_schema if f.name not in skip])


def _curated_schema(source: pa.Schema, sidecar: pa.Schema) -> pa.Schema:
    import datasets

    added = score_fields(sidecar)
    base = pa.schema([f for f in source if f.name not in added.names], metadata=source.metadata)
    features = datasets.Features.from_arrow_schema(base)
    for f in added:
        features[f.name] = datasets.Features.from_arrow_schema(pa.schema([f]))[f.name]
    return features.arrow_schema


def _sidecar_rows(sidecar: pq.ParquetFile):
    """A sidecar's rows as dicts, one chunk at a time: a shard of millions of rows is never a list of dicts."""
    for batch in sidecar.iter_batches(batch_size=_CHUNK):
        yield from batch.to_pylist()


def _flush(writer: pq.ParquetWriter, rows: list[dict], schema: pa.Schema, at_least: int) -> None:
    """Write ``rows`` as one row group and empty the list, once it holds ``at_least`` rows."""
    if len(rows) >= at_least:
        writer.write_table(pa.Table.from_pylist(rows, schema=schema))
        rows.clear()


def write_shard_outputs(layout: Layout, shard: Shard, plan: Mapping) -> None:
    """Write ``rejected/<shard>.parquet`` and ``curated/<shard>.parquet`` side by side, both atomically (the
    curated file is committed last: it marks the shard as done).

    Source, sidecar, kept and rejected rows all stream in chunks of ``_CHUNK`` rows, so the memory this takes
    does not grow with the shard's length.
    """
    sidecar = pq.ParquetFile(layout.sidecar(shard.name))
    expected = sidecar.metadata.num_rows
    schema = _curated_schema(shard.schema(), sidecar.schema_arrow)
    record_names = [f.name[len(PREFIX):] for f in score_fields(sidecar.schema_arrow)]
    final, reject_final = layout.curated_file(shard.name), layout.rejected_file(shard.name)
    tmp, reject_tmp = temporary_path(final), temporary_path(reject_final)
    count = 0
    with pq.ParquetWriter(tmp, schema, compression="zstd") as writer, \
            pq.ParquetWriter(reject_tmp, _REJECTED_SCHEMA, compression="zstd") as reject_writer:
        kept: list[dict] = []
        rejected: list[dict] = []
        for row, score in itertools.zip_longest(shard.rows(), _sidecar_rows(sidecar)):
            if row is None or score is None:
                count = -1  # the source and its scores differ in length
                break
            count += 1
            keep, reason = decide(plan, shard.name, score)
            if keep:
                kept.append(encodable({**row, **{PREFIX + name: score[name] for name in record_names}}))
                _flush(writer, kept, schema, _CHUNK)
            else:
                rejected.append({"key": score["key"], "index": score["index"], "kind": score["kind"],
                                 "score": score["score"], "reason": reason})
                _flush(reject_writer, rejected, _REJECTED_SCHEMA, _CHUNK)
        if count == expected:
            _flush(writer, kept, schema, 1)
            _flush(reject_writer, rejected, _REJECTED_SCHEMA, 1)
    if count != expected:
        tmp.unlink(missing_ok=True)
        reject_tmp.unlink(missing_ok=True)
        raise CurationError(
            f"shard {shard.name} no longer matches its {expected} scored rows: the source changed; "
            "use another --output or --overwrite to score it again"
        )
    commit(reject_tmp, reject_final)
    commit(tmp, final)
