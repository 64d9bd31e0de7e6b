"""Row readers for table files: Parquet, Arrow (``save_to_disk`` and IPC files), JSON lines, JSON arrays, CSV.

Each reader streams ``dict`` rows (images undecoded: ``datasets`` Image columns stay ``{"bytes", "path"}``
dicts) and never raises for one bad line or record: it yields ``{ERROR_FIELD: reason}`` instead, the reason
naming the file and the line (JSON lines, CSV) or the item (JSON arrays), so the row is counted as an error.
A file that cannot be read at all raises :class:`SourceError` (one line naming the file).

Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "rows.jsonl")
    >>> _ = open(path, "w").write('{"text": "a"}\\nnot json\\n')
    >>> list(jsonl_rows(path))
    [{'text': 'a'}, {'__error__': 'row: rows.jsonl line 2 is not valid JSON'}]
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
from collections.abc import Iterator

import pyarrow as pa

from .encodable import has_surrogate
from .errors import ERROR_FIELD, SourceError

__all__ = ["arrow_rows", "arrow_schema", "count_arrow", "csv_rows", "json_kind", "json_rows", "jsonl_rows",
           "parquet_rows", "parquet_schema"]

CHUNK = 256  # rows per Arrow batch read from Parquet


def _error(reason: str) -> dict:
    return {ERROR_FIELD: reason}


def _unreadable(path: str, err: BaseException) -> SourceError:
    first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
    return SourceError(f"cannot read {path} ({first}); is it a complete file of its type?")


# --------------------------------------------------------------------------------------------------- Parquet


def parquet_rows(path: str) -> Iterator[dict]:
    import pyarrow.parquet as pq

    try:
        handle = pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as err:
        raise _unreadable(path, err) from None
    for batch in handle.iter_batches(batch_size=CHUNK):
        yield from batch.to_pylist()


def parquet_schema(path: str) -> pa.Schema:
    import pyarrow.parquet as pq

    try:
        return pq.read_schema(path)
    except (OSError, pa.ArrowException) as err:
        raise _unreadable(path, err) from None


def count_parquet(path: str) -> int:
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path).metadata.num_rows
    except (OSError, pa.ArrowException) as err:
        raise _unreadable(path, err) from None


# ----------------------------------------------------------------------------------------------------- Arrow


def _open_arrow(path: str):
    """An IPC reader: ``datasets`` writes the streaming format, ``pyarrow.feather`` / ``ipc.new_file`` the file one."""
    source = pa.memory_map(path)
    try:
        return pa.ipc.open_file(source)
    except pa.ArrowInvalid:
        source.seek(0)
    try:
        return pa.ipc.open_stream(source)
    except (OSError, pa.ArrowException) as err:
        raise _unreadable(path, err) from None


def _arrow_batches(path: str) -> Iterator[pa.RecordBatch]:
    reader = _open_arrow(path)
    if isinstance(reader, pa.ipc.RecordBatchFileReader):
        for i in range(reader.num_record_batches):
            yield reader.get_batch(i)
    else:
        yield from reader


def arrow_rows(path: str) -> Iterator[dict]:
    for batch in _arrow_batches(path):
        for start in range(0, batch.num_rows, CHUNK):
            yield from batch.slice(start, CHUNK).to_pylist()


def arrow_schema(path: str) -> pa.Schema:
    return _open_arrow(path).schema


def count_arrow(path: str) -> int:
    """Rows of an Arrow file (memory-mapped: only the batch headers are read)."""
    try:
        return sum(batch.num_rows for batch in _arrow_batches(path))
    except (OSError, pa.ArrowException) as err:
        raise _unreadable(path, err) from None


# ------------------------------------------------------------------------------------------------------ JSON


def _open_binary(path: str):
    return gzip.open(path, "rb") if path.lower().endswith(".gz") else open(path, "rb")


def jsonl_rows(path: str) -> Iterator[dict]:
    """One row per non-blank line; a line that is not a JSON object is a row error naming the line."""
    name = os.path.basename(path)
    try:
        with _open_binary(path) as fh:
            for number, raw in enumerate(fh, 1):
                if not raw.strip():
                    continue
                try:
                    row = json.loads(raw.decode("utf-8"))
                except UnicodeDecodeError:
                    yield _error(f"row: {name} line {number} is not valid UTF-8")
                    continue
                except json.JSONDecodeError:
                    yield _error(f"row: {name} line {number} is not valid JSON")
                    continue
                except RecursionError:  # a value nested thousands of levels deep
                    yield _error(f"row: {name} line {number} is nested too deeply")
                    continue
                yield row if isinstance(row, dict) else _error(f"row: {name} line {number} is not a JSON object")
    except (OSError, EOFError) as err:  # a truncated .gz: the rows read so far stay, the rest is one error
        yield _error(f"row: {name} cannot be read past this point ({str(err)[:120]})")


def json_kind(path: str) -> str:
    """``"array"`` (``[...]``), ``"object"`` (one pretty-printed document) or ``"lines"`` (JSON lines)."""
    with _open_binary(path) as fh:
        head = fh.read(1 << 16)
        first = head.lstrip()[:1]
        if first == b"[":
            return "array"
        if first != b"{":
            return "lines"
        line = (head.lstrip().split(b"\n", 1) + [b""])[0]
        try:
            if isinstance(json.loads(line.decode("utf-8", "replace")), dict):
                return "lines"  # a complete object on the first line: JSON lines
        except json.JSONDecodeError:
            pass
    return "object"


def json_rows(path: str) -> Iterator[dict]:
    """Rows of a ``.json`` file: a JSON array of objects, one object (one row), or JSON lines."""
    kind = json_kind(path)
    if kind == "lines":
        yield from jsonl_rows(path)
        return
    name = os.path.basename(path)
    data = load_json_document(path)
    items = data if kind == "array" else [data]
    for number, item in enumerate(items, 1):
        yield item if isinstance(item, dict) else _error(f"row: {name} item {number} is not a JSON object")


def load_json_document(path: str):
    """A whole JSON file (array or object); :class:`SourceError` naming the file and position when broken."""
    try:
        with _open_binary(path) as fh:
            return json.loads(fh.read().decode("utf-8"))
    except UnicodeDecodeError:
        raise SourceError(f"cannot read {path}: not valid UTF-8") from None
    except json.JSONDecodeError as err:
        raise SourceError(f"cannot read {path}: not valid JSON (line {err.lineno}, column {err.colno}: "
                          f"{err.msg})") from None


# ------------------------------------------------------------------------------------------------------- CSV


def csv_rows(path: str) -> Iterator[dict]:
    """One row per CSV record (quoted cells may span lines); cells are strings, empty cells ``None``.

    A record whose field count differs from the header's, or that is not valid UTF-8, is a row error that
    names the file and its line.
    """
    name = os.path.basename(path)
    with _open_binary(path) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", errors="surrogateescape", newline="")
        reader = csv.reader(text)
        header = next(reader, None)
        if header is None:
            return
        line = reader.line_num + 1
        for record in reader:
            start, line = line, reader.line_num + 1
            if not record:
                continue
            if len(record) != len(header):
                yield _error(f"row: {name} line {start} has {len(record)} fields, the header has {len(header)}")
                continue
            if any(has_surrogate(cell) for cell in record):
                yield _error(f"row: {name} line {start} is not valid UTF-8")
                continue
            yield {column: (cell if cell != "" else None) for column, cell in zip(header, record)}
