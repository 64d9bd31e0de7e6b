"""`unifilter-hf score`: score a source (file, folder, glob or Hub dataset) and write it back as one table.

The source is opened by the same source layer as `unifilter-hf curate` (:func:`~unifilter_hf.sources.scan_source`,
then :func:`~unifilter_hf.sources.check_layouts` on every shard) and scored by the same local engine into
sidecars in a temporary folder, so the two commands give the same rows the same scores and the same error
reasons. The output is then written from the source rows and their sidecars (:mod:`.table_output`: checked
before any work, written atomically). Results are never taken from an earlier run.

Example:
    >>> counts = score_table("rows.parquet", "scored.jsonl", model="path/to/checkpoint", threshold=2.0)
    ... # doctest: +SKIP
    >>> counts  # doctest: +SKIP
    {'rows': 8, 'errors': 1, 'written': 5}
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import fields
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..scoring_settings import ScoringSettings
from ..sources import ERROR_FIELD, Shard, SourceError, check_layouts, chunked, scan_source
from .table_output import OutputError, TableWriter, check_output

__all__ = ["OutputError", "check_output", "score_table"]

_CHUNK = 256


def _output_schema(shards: list[Shard]) -> pa.Schema:
    """The source columns of every shard in one schema (checked before scoring: never a late failure)."""
    schemas = [s.schema() for s in shards] or [pa.schema([])]
    try:
        schema = schemas[0] if len(schemas) == 1 else pa.unify_schemas(schemas, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise OutputError(
            f"the shards have columns of different types ({str(err).splitlines()[0][:160]}): write a .jsonl "
            "output, or score the shards one by one"
        ) from None
    keep = [f for f in schema if f.name != ERROR_FIELD and not f.name.startswith("unifilter_")]
    return pa.schema(keep, metadata=schemas[0].metadata if len(schemas) == 1 else None)


def _column_names(shards: list[Shard]) -> list[str]:
    names: dict[str, None] = {}
    for shard in shards:
        for name in shard.schema().names:
            if name != ERROR_FIELD and not name.startswith("unifilter_"):
                names[name] = None
    return list(names)


def score_table(
    source: Any,
    output: str | os.PathLike,
    *,
    threshold: float | None = None,
    keep_errors: bool = False,
    config: str | None = None,
    split: str = "train",
    revision: str | None = None,
    scoring: ScoringSettings | None = None,
    quiet: bool = False,
    **settings: Any,
) -> dict:
    """Score `source` and write every row (or, with `threshold`, the kept rows) to `output`.

    `scoring` holds the scoring settings (`unifilter-hf score` passes `ScoringSettings.from_args`);
    `settings` are single `ScoringSettings` fields over it (`model=`, `batch_size=`, ...). Relative image paths
    (and mmc4 `image_name`) resolve against `image_root` when set, else against each data file's own folder.
    Returns counts: rows, errors, written.
    """
    from ..filtering import UniFilterScore

    fmt = check_output(output)
    found = scan_source(source, config=config, split=split, revision=revision)  # before the model loads
    score = UniFilterScore(settings=scoring, **settings)
    check_layouts(found.shards, score.settings.columns)
    if found.note() and not quiet:
        print(f"unifilter-hf score: {found.note()}", file=sys.stderr)
    schema = _output_schema(found.shards) if fmt == "parquet" else None
    names = _column_names(found.shards) if fmt == "csv" else None
    scorer = score.scorer  # a wrong --model fails here, before any row is read
    with tempfile.TemporaryDirectory(prefix=".unifilter-score-", dir=Path(output).parent) as tmp:
        from .engine_local import run_local
        from .manifest import Layout
        from .summary import Progress

        layout = Layout(tmp)
        layout.make()
        total = sum(s.num_rows for s in found.shards) if all(s.num_rows is not None for s in found.shards) else None
        progress = Progress(total, quiet=quiet)
        try:
            run_local(scorer, found.shards, layout, columns=score.settings.columns,
                      window=score.settings.batch_size * 8, workers=0, progress=progress)
        finally:
            progress.close()
        return _write(output, found.shards, layout, score, threshold=threshold, keep_errors=keep_errors,
                      schema=schema, names=names)


def _records(table: pa.Table) -> list:
    from ..scoring import ScoreRecord

    wanted = [f.name for f in fields(ScoreRecord) if f.name in table.column_names]
    return [ScoreRecord(**row) for row in table.select(wanted).to_pylist()]


def _write(output, shards: list[Shard], layout, score, *, threshold, keep_errors, schema, names) -> dict:
    rows_in = errors = 0
    score_schema = None
    with TableWriter(output, schema=schema, columns=names) as writer:
        for shard in shards:
            records = _records(pq.read_table(layout.sidecar(shard.name)))
            position = 0
            for rows in chunked(shard.rows(), _CHUNK):
                chunk = records[position : position + len(rows)]
                if len(chunk) != len(rows):
                    raise SourceError(f"{shard.location or shard.name} changed while it was scored: run again")
                position += len(rows)
                columns = score._output(chunk, True)
                if score_schema is None:
                    score_schema = pa.Table.from_pydict(columns).schema
                    writer.schema = None if schema is None else pa.unify_schemas([schema, score_schema])
                    writer.columns = None if names is None else names + list(columns)
                kept = []
                for i, (row, record) in enumerate(zip(rows, chunk)):
                    errors += not record.ok
                    if threshold is None or record.keep(threshold) or (keep_errors and not record.ok):
                        source = {k: v for k, v in row.items() if k != ERROR_FIELD}
                        kept.append({**source, **{name: values[i] for name, values in columns.items()}})
                rows_in += len(rows)
                writer.write(kept)
            if position != len(records):
                raise SourceError(f"{shard.location or shard.name} changed while it was scored: run again")
        written = writer.rows
    return {"rows": rows_in, "errors": errors, "written": written}
