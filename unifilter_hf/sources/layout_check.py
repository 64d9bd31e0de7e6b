"""The layout check before any scoring: a cheap look at every shard, one job error when none is readable.

Each shard is opened and read up to its first parsable row (at most ``PEEK_ROWS`` rows): a shard that cannot
be opened at all stops the job naming the file, and a source in which no shard has a known row layout stops
with one line naming the columns seen and the ``--columns`` fix. A source where some shards have a known
layout goes on; the rows of the others become row errors with the reason.

Example:
    >>> import pyarrow as pa, pyarrow.parquet as pq, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "p.parquet")
    >>> pq.write_table(pa.table({"picture": [b"x"], "words": ["a cup"]}), path)
    >>> from unifilter_hf.sources import open_source
    >>> try:
    ...     check_layouts(open_source(path))
    ... except SourceError as err:
    ...     print(str(err)[:68])
    no known row layout in any shard: p has columns ['picture', 'words']
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

from ..row_layouts import ColumnMap, SchemaError
from .errors import ERROR_FIELD, SourceError
from .shards import Shard
from .webdataset import document_view

__all__ = ["PEEK_ROWS", "check_layouts"]

PEEK_ROWS = 32
_COLUMNS_FIX = "name them with --columns, e.g. --columns image=IMG,text=CAPTION (or images=...,texts=...)"


def _peek(shard: Shard, column_map: ColumnMap | None) -> tuple[bool, list[str] | None, str | None, bool]:
    """Look at the shard's first rows: (a row of a known layout seen, the columns of the first parsable row,
    the first row error, any row read at all). Webdataset member sets vary row by row: any row may match."""
    first, error, any_row = None, None, False
    for row in itertools.islice(shard.rows(), PEEK_ROWS):
        any_row = True
        if ERROR_FIELD not in row and shard.format in ("webdataset", "files"):
            row = document_view(row)
        if ERROR_FIELD in row:
            error = error or row[ERROR_FIELD]
            continue
        names = sorted(str(k) for k in row)
        first = first or names
        if _known(names, column_map):
            return True, names, None, True
    return False, first, error, any_row


def _known(names: list[str], column_map: ColumnMap | None) -> bool:
    if column_map is not None:
        return all(c in names for c in column_map.columns)
    try:
        ColumnMap.detect(names)
    except SchemaError:
        return False
    return True


def check_layouts(shards: Sequence[Shard], columns: ColumnMap | Mapping[str, str] | None = None) -> None:
    """Raise :class:`SourceError` unless at least one shard has rows of a known layout (or of ``columns``).

    Hub and in-memory shards share their features: only the first is looked at.
    """
    column_map = ColumnMap.coerce(columns) if columns else None
    seen: list[tuple[str, list[str]]] = []
    errors: list[str] = []
    any_rows = False
    for shard in shards:
        if shard.format in ("hub", "iterable") and shard.index > 0:
            continue
        known, names, error, read = _peek(shard, column_map)
        if known:
            return
        any_rows = any_rows or read
        if error:
            errors.append(error)
        if names is not None:
            seen.append((shard.name, names))
    if not seen and not any_rows:
        return  # an empty source: nothing to score, nothing wrong
    if not seen:
        detail = f" (e.g. {errors[0]})" if errors else ""
        raise SourceError(f"no readable row in the first {PEEK_ROWS} rows of any shard{detail}")
    name, names = seen[0]
    more = f" (and {len(seen) - 1} other shards)" if len(seen) > 1 else ""
    if column_map is not None:
        missing = [c for c in column_map.columns if c not in names]
        raise SourceError(f"--columns names {missing} that no shard has: {name} has columns {names}{more}")
    raise SourceError(f"no known row layout in any shard: {name} has columns {names}{more}; {_COLUMNS_FIX}")
