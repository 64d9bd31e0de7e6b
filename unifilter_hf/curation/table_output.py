"""Write scored rows to ``.parquet``, ``.jsonl`` or ``.csv``: checked before any work, written atomically.

Parquet keeps every column and type (image bytes included). JSON lines and CSV hold text and scores: an image
column is written as its path or URL where the row has one (a ``datasets`` Image dict with a ``path``), and
left out where it holds raw bytes, with one note on stderr naming the columns; bytes that are UTF-8 text
(webdataset ``txt``/``json``/``cls`` members) are written as text. CSV cells that a spreadsheet would run as a
formula (starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return) are prefixed with ``'``. Every file
is written under a temporary name beside the output and renamed into place at the end, so a failed run leaves
no 0-byte or half-written file.

Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "out.csv")
    >>> with TableWriter(path, columns=["text", "jpg"]) as writer:
    ...     writer.write([{"text": "=1+1", "jpg": b"\\xff\\xd8"}])
    >>> open(path).read().splitlines()
    ['text,jpg', "'=1+1,"]
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import UniFilterError
from ..sources.encodable import encodable

__all__ = ["OUTPUT_SUFFIXES", "OutputError", "TableWriter", "check_output", "escape_formula", "text_value"]

OUTPUT_SUFFIXES = {".parquet": "parquet", ".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv"}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class OutputError(UniFilterError, ValueError):
    """An output that cannot be written; one line naming the fix (checked before scoring)."""


def check_output(path: str | os.PathLike) -> str:
    """The format for ``path`` (``parquet``, ``jsonl``, ``csv``), after checking it can be written.

    Example:
        >>> try:
        ...     check_output("scores.txt")
        ... except OutputError as err:
        ...     print(err)
        cannot write 'scores.txt': the output must end in .parquet, .jsonl or .csv
    """
    path = Path(path)
    fmt = OUTPUT_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise OutputError(f"cannot write {str(path)!r}: the output must end in .parquet, .jsonl or .csv")
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a folder; give a file name ending in {path.suffix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot create the folder of {path} ({err.strerror or err})") from None
    if not os.access(path.parent, os.W_OK):
        raise OutputError(f"cannot write {path}: its folder is not writable")
    return fmt


def escape_formula(text: str) -> str:
    """Prefix ``'`` to a CSV cell a spreadsheet would run as a formula (OWASP CSV injection).

    Example:
        >>> escape_formula("=HYPERLINK(\\"http://x\\")"), escape_formula("-3 dB"), escape_formula("a cat")
        ('\\'=HYPERLINK("http://x")', "'-3 dB", 'a cat')
    """
    return "'" + text if text.startswith(_FORMULA_START) else text


_OMIT = object()


def text_value(value: Any) -> Any:
    """A value as JSON-ready text and numbers; ``_OMIT`` for raw bytes (an image with no path or URL).

    Example:
        >>> text_value({"bytes": b"\\x89PNG", "path": "images/cat.png"}), text_value(b"a caption")
        ('images/cat.png', 'a caption')
    """
    if isinstance(value, (bytes, bytearray, memoryview)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return _OMIT
    if isinstance(value, Mapping):
        if "bytes" in value and "path" in value and len(value) == 2:  # a datasets Image value
            if value.get("path"):
                return value["path"]
            return None if value.get("bytes") is None else _OMIT
        out = {}
        for key, item in value.items():
            item = text_value(item)
            if item is not _OMIT:
                out[str(key)] = item
        return out
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        items = [text_value(v) for v in value]
        return _OMIT if any(v is _OMIT for v in items) else items
    if isinstance(value, float) and math.isnan(value):
        return None  # JSON has no NaN: null, as pandas writes it
    if isinstance(value, np.generic):
        return value.item()
    return encodable(value)


class TableWriter:
    """Write rows in chunks to a temporary file; rename into place on a clean exit, delete it otherwise.

    Parquet needs ``schema`` (or takes the first chunk's); CSV needs ``columns`` (or takes the first chunk's
    keys). ``note`` receives the one-line note about image bytes left out of JSON lines or CSV.
    """

    def __init__(self, path: str | os.PathLike, *, schema: pa.Schema | None = None,
                 columns: Sequence[str] | None = None, note=None):
        self.path = Path(path)
        self.format = OUTPUT_SUFFIXES[self.path.suffix.lower()]
        self.tmp = self.path.with_name(f".tmp-{os.getpid()}-{self.path.name}")
        self.schema, self.columns = schema, list(columns) if columns is not None else None
        self.note = note or (lambda text: print(text, file=sys.stderr))
        self.rows = 0
        self._omitted: set[str] = set()
        self._noted = False
        self._parquet = self._file = self._csv = None

    def __enter__(self) -> TableWriter:
        if self.format != "parquet":
            self._file = open(self.tmp, "w", encoding="utf-8", newline="")
        return self

    def write(self, rows: Sequence[Mapping]) -> None:
        if not rows:
            return
        if self.format == "parquet":
            self._write_parquet(rows)
        elif self.format == "jsonl":
            for row in rows:
                self._file.write(json.dumps(self._texts(row), ensure_ascii=False, default=str) + "\n")
        else:
            self._write_csv(rows)
        self.rows += len(rows)
        if self._omitted and not self._noted:
            self._noted = True
            self.note(
                f"note: image bytes in column(s) {sorted(self._omitted)} are left out of the {self.path.suffix} "
                "output (a path or URL is kept where the row has one); write .parquet to keep them"
            )

    def _write_parquet(self, rows: Sequence[Mapping]) -> None:
        if self._parquet is None:
            self.schema = self.schema or pa.Table.from_pylist([encodable(dict(r)) for r in rows]).schema
            self._parquet = pq.ParquetWriter(self.tmp, self.schema, compression="zstd")
        self._parquet.write_table(pa.Table.from_pylist([encodable(dict(r)) for r in rows], schema=self.schema))

    def _texts(self, row: Mapping) -> dict:
        out = {}
        for key, value in row.items():
            value = text_value(value)
            if value is _OMIT:
                self._omitted.add(str(key))
            else:
                out[str(key)] = value
        return out

    def _write_csv(self, rows: Sequence[Mapping]) -> None:
        if self._csv is None:
            self.columns = self.columns or [str(k) for k in rows[0]]
            self._csv = csv.writer(self._file)
            self._csv.writerow([escape_formula(c) for c in self.columns])
        for row in rows:
            texts = self._texts(row)
            self._csv.writerow([_csv_cell(texts.get(c)) for c in self.columns])

    def __exit__(self, kind, value, traceback) -> None:
        ok = kind is None
        try:
            self._close(ok)
        except BaseException:
            ok = False
            raise
        finally:
            if ok:
                os.replace(self.tmp, self.path)
            else:
                self.tmp.unlink(missing_ok=True)

    def _close(self, ok: bool) -> None:
        if self._parquet is not None:
            self._parquet.close()
        elif self.format == "parquet" and ok:  # no row at all: still a valid, empty file
            pq.write_table((self.schema or pa.schema([])).empty_table(), self.tmp)
        if self._file is not None:
            if self.format == "csv" and self._csv is None and self.columns and ok:
                csv.writer(self._file).writerow([escape_formula(c) for c in self.columns])
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        value = json.dumps(value, ensure_ascii=False, default=str)
    if isinstance(value, str):
        return escape_formula(value)
    return str(value)
