"""Keyed members: webdataset tars (plain or compressed) and img2dataset "files" folders -> one row per key.

Members (or files) whose names share a key, everything before the first dot of the base name
(``"dir/000123.jpg"`` -> ``"dir/000123"``, ext ``"jpg"``), make one row ``{"__key__": key, ext: bytes, ...}``.
Bytes stay undecoded (the image loader decodes them, so a corrupt image is a row error). A member larger than
``max_bytes`` is never read: its row is an error naming the member, so a small ``.tgz`` that inflates to
gigabytes costs time, not memory. Hidden members (``.``-prefixed, such as macOS ``._x.jpg``) and members
without an extension are not part of any row.

Example:
    >>> import io, os, tarfile, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "shard.tar")
    >>> with tarfile.open(path, "w") as tar:
    ...     for name, data in [("a.txt", b"hi"), ("a.cls", b"1"), ("b.txt", b"yo")]:
    ...         info = tarfile.TarInfo(name); info.size = len(data); tar.addfile(info, io.BytesIO(data))
    >>> [sorted(row) for row in tar_rows(path)]
    [['__key__', 'cls', 'txt'], ['__key__', 'txt']]
"""

from __future__ import annotations

import json
import os
import tarfile
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from ..errors import UniFilterError
from .errors import ERROR_FIELD

__all__ = ["document_view", "files_rows", "split_member", "tar_rows", "tar_schema"]

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp", "gif", "bmp", "tif", "tiff")


def split_member(name: str) -> tuple[str, str]:
    """``"dir/000123.jpg"`` -> ``("dir/000123", "jpg")``; the key is everything before the first dot."""
    folder, base = os.path.split(name)
    stem, _, ext = base.partition(".")
    return os.path.join(folder, stem) if folder else stem, ext.lower()


def _is_member(name: str) -> bool:
    base = os.path.basename(name)
    return bool(base) and not base.startswith(".") and "." in base


def _grouped(items: Iterator[tuple[str, int, Any]], where: str, max_bytes: int) -> Iterator[dict]:
    """Rows from ``(name, size, read)`` items in order; consecutive names with one key form a row."""
    key, row = None, {}
    for name, size, read in items:
        member_key, ext = split_member(name)
        if member_key != key and row:
            yield row
            row = {}
        key = member_key
        row["__key__"] = key
        if size > max_bytes:
            row[ERROR_FIELD] = f"row: {where} member {name} is {size} bytes, over max_bytes={max_bytes}"
            row[ext] = None
            continue
        row[ext] = read()
    if row:
        yield row


def tar_rows(path: str, max_bytes: int = 64 * 1024 * 1024) -> Iterator[dict]:
    """Rows of a webdataset tar (``.tar``, ``.tar.gz``, ``.tgz``; compression detected from the bytes)."""
    where = os.path.basename(path)
    try:
        tar = tarfile.open(path, "r:*")
    except (tarfile.TarError, OSError, EOFError) as err:
        yield {ERROR_FIELD: f"row: {where} is not a readable tar ({str(err)[:120]})"}
        return
    read_so_far = []
    with tar:
        def members() -> Iterator[tuple[str, int, Any]]:
            try:
                for member in tar:  # random access: a plain tar seeks past members it does not read
                    if member.isfile() and _is_member(member.name):
                        read_so_far.append(member.name)
                        yield member.name, member.size, lambda m=member: tar.extractfile(m).read()
            except (tarfile.TarError, OSError, EOFError) as err:
                last = read_so_far[-1] if read_so_far else "the start"
                raise _Truncated(f"row: {where} cannot be read after {last} ({str(err)[:100]})") from None

        try:
            yield from _grouped(members(), where, max_bytes)
        except _Truncated as err:
            yield {ERROR_FIELD: str(err)}


class _Truncated(UniFilterError):
    """A tar that ends mid-member: the rows read so far stay, the rest is one row error."""


def tar_schema(path: str) -> pa.Schema:
    """``__key__`` then one binary column per member extension (read from the member headers only)."""
    exts: set[str] = set()
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                if member.isfile() and _is_member(member.name):
                    exts.add(split_member(member.name)[1])
    except (tarfile.TarError, OSError, EOFError):
        pass  # the rows say what went wrong
    return pa.schema([("__key__", pa.string())] + [(ext, pa.binary()) for ext in sorted(exts)])


def count_tar(path: str) -> int | None:
    """Rows of a plain tar from its headers (a seek per member); None for compressed tars (a full inflate)."""
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic[:2] in (b"\x1f\x8b", b"BZ") or magic == b"\xfd7zX" or magic == b"(\xb5/\xfd":
        return None
    try:
        with tarfile.open(path, "r:") as tar:
            keys, last = 0, None
            for member in tar:
                if member.isfile() and _is_member(member.name):
                    key = split_member(member.name)[0]
                    keys += key != last
                    last = key
            return keys
    except (tarfile.TarError, OSError, EOFError):
        return None


def files_rows(folder: str, max_bytes: int = 64 * 1024 * 1024) -> Iterator[dict]:
    """Rows of an img2dataset "files" folder (``000000000.jpg`` + ``.txt`` + ``.json`` per sample)."""
    names = sorted(n for n in os.listdir(folder) if _is_member(n) and os.path.isfile(os.path.join(folder, n)))

    def read(name: str):
        with open(os.path.join(folder, name), "rb") as fh:
            return fh.read()

    items = ((n, os.path.getsize(os.path.join(folder, n)), lambda n=n: read(n)) for n in names)
    yield from _grouped(items, os.path.basename(folder.rstrip(os.sep)), max_bytes)


def files_schema(folder: str) -> pa.Schema:
    exts = sorted({split_member(n)[1] for n in os.listdir(folder) if _is_member(n)})
    return pa.schema([("__key__", pa.string())] + [(ext, pa.binary()) for ext in exts])


def count_files(folder: str) -> int:
    return len({split_member(n)[0] for n in os.listdir(folder) if _is_member(n)})


def document_view(row: dict, where: str | None = None) -> dict:
    """The columns a webdataset row is scored from: the members, plus the fields of a ``json`` document.

    OBELICS-style tars keep a document in one ``json`` member: ``texts`` with either ``images`` (parallel) or
    ``image_info`` (parallel entries with ``image_base64``, else mmc4 entries with ``matched_text_index``).
    Parallel ``image_info`` is turned into an OBELICS ``images`` list; mmc4 entries keep their layout.
    ``where`` (the tar's name) goes into the reason of a ``json`` member that is not valid JSON.

    Example:
        >>> view = document_view({"__key__": "d0", "json": b'{"texts": ["Hi", null], '
        ...                       b'"image_info": [null, {"image_base64": "AAAA"}]}'})
        >>> view["images"], view["texts"]
        ([None, 'AAAA'], ['Hi', None])
    """
    raw = row.get("json")
    if raw is None or ERROR_FIELD in row or any(k in row for k in IMAGE_EXTS + ("txt",)):
        return row
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as err:  # RecursionError: nested thousands deep
        member = f"{where} member" if where else "member"
        what = "is nested too deeply" if isinstance(err, RecursionError) else "is not valid JSON"
        return {**row, ERROR_FIELD: f"row: {member} {row.get('__key__')}.json {what}"}
    if not isinstance(doc, dict):
        return row
    view = {k: v for k, v in doc.items() if k not in row}
    texts, info = doc.get("texts"), doc.get("image_info")
    if isinstance(texts, list) and isinstance(info, list) and "images" not in doc:
        parallel = not any(isinstance(i, dict) and "matched_text_index" in i for i in info)
        if len(info) == len(texts) and parallel:
            view["images"] = [_info_image(i) for i in info]
            view.pop("image_info", None)
        else:
            view["text_list"] = view.pop("texts")
    return {**row, **view}


def _info_image(info: Any) -> Any:
    if not isinstance(info, dict):
        return info
    for key in ("image_base64", "image_bytes", "bytes", "image", "raw_url", "url", "src"):
        if info.get(key):
            return info[key]
    return None
