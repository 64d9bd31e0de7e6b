"""Open a data source as a list of shards whose rows come out with images *undecoded*.

A source is a Hub dataset id (streamed), a local file, folder or glob (see :mod:`.detect` for the layouts
recognised and the files skipped), or an in-memory ``datasets.IterableDataset``. Each :class:`Shard` is a small
picklable description (Ray actors receive it as JSON) that streams its rows on demand, so nothing is ever
materialised, and knows the folder its data file lives in: relative image paths in its rows resolve there.

Images stay bytes (``{"bytes", "path"}`` dicts, raw tar members) so that a corrupt image becomes a per-row
error in :func:`~unifilter_hf.image_loading.load_image` instead of an exception inside ``datasets``.

Example:
    >>> import pyarrow as pa, pyarrow.parquet as pq, tempfile, os
    >>> folder = tempfile.mkdtemp()
    >>> pq.write_table(pa.table({"text": ["a", "b"]}), os.path.join(folder, "part-0.parquet"))
    >>> _ = open(os.path.join(folder, "00000_stats.json"), "w").write("{}")
    >>> source = scan_source(folder)
    >>> [(s.name, s.num_rows) for s in source.shards], source.note()
    ([('part-0', 2)], 'skipped 1 file that is not data: 00000_stats.json (img2dataset stats)')
"""

from __future__ import annotations

import glob
import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from . import readers, webdataset
from .detect import DataFile, Found, Skipped, check_single_file, find_data_files, format_of, metadata_kind
from .encodable import encodable
from .errors import ERROR_FIELD, SourceError
from .hub import looks_like_hub_id, open_hub_dataset, undecode_images
from .webdataset import document_view

__all__ = ["Shard", "Source", "SourceError", "chunked", "hub_shards", "open_source", "scan_source"]

DEFAULT_MAX_BYTES = 64 * 1024 * 1024  # the image loader's default: no member or file larger is read
_LOCAL = ("parquet", "arrow", "jsonl", "json", "csv", "webdataset", "files")


@dataclass(frozen=True)
class Shard:
    """One unit of work: a data file, a tar, an img2dataset ``files`` folder, or one shard of a Hub dataset.

    ``name`` is stable and file-system safe (output files are named after it); ``rows()`` streams the rows as
    dicts with images undecoded; ``views()`` streams them as they are scored; ``schema()`` is the Arrow schema
    used to write the rows back unchanged; ``folder`` is where relative image paths resolve.

    Example:
        >>> import pyarrow as pa, pyarrow.parquet as pq, tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "part-0.parquet")
        >>> pq.write_table(pa.table({"text": ["a", "b"]}), path)
        >>> shard = open_source(path)[0]
        >>> shard.name, shard.num_rows, [r["text"] for r in shard.rows()]
        ('part-0', 2, ['a', 'b'])
    """

    name: str
    format: str  # parquet | arrow | jsonl | json | csv | webdataset | files | hub | iterable
    location: str = ""
    index: int = 0
    num_shards: int = 1
    num_rows: int | None = None
    options: dict = field(default_factory=dict, compare=False)
    dataset: Any = field(default=None, compare=False, repr=False)  # an in-memory IterableDataset

    @property
    def folder(self) -> str | None:
        """The folder relative image paths of this shard's rows resolve against (None: not a local file)."""
        if self.format == "files":
            return self.location
        return os.path.dirname(self.location) if self.format in _LOCAL else None

    @property
    def max_bytes(self) -> int:
        return int(self.options.get("max_bytes") or DEFAULT_MAX_BYTES)

    def rows(self) -> Iterator[dict]:
        """Stream the shard's rows (images undecoded); unparsable ones carry ``__error__`` with the reason."""
        fmt, path = self.format, self.location
        if fmt == "parquet":
            yield from readers.parquet_rows(path)
        elif fmt == "arrow":
            yield from readers.arrow_rows(path)
        elif fmt == "jsonl":
            yield from readers.jsonl_rows(path)
        elif fmt == "json":
            yield from readers.json_rows(path)
        elif fmt == "csv":
            yield from readers.csv_rows(path)
        elif fmt == "webdataset":
            yield from webdataset.tar_rows(path, self.max_bytes)
        elif fmt == "files":
            yield from webdataset.files_rows(path, self.max_bytes)
        else:
            yield from self._streamed()

    def views(self) -> Iterator[dict]:
        """The rows as they are scored: a webdataset ``json`` document opened (:func:`document_view`), an
        img2dataset row that was never downloaded marked with its download error."""
        for row in self.rows():
            yield row_view(self, row)

    def _streamed(self) -> Iterator[dict]:
        ds = self._iterable()
        if ds.num_shards > 1 or self.num_shards > 1:
            ds = ds.shard(num_shards=self.num_shards, index=self.index)
        yield from undecode_images(ds)

    def _iterable(self):
        if self.dataset is not None:
            return self.dataset
        opts = self.options
        return open_hub_dataset(self.location, config=opts.get("config"), split=opts.get("split", "train"),
                                revision=opts.get("revision"))

    def schema(self) -> pa.Schema:
        """The Arrow schema of the rows as written back (keeps ``datasets`` Image metadata)."""
        if self.format == "parquet":
            return readers.parquet_schema(self.location)
        if self.format == "arrow":
            return readers.arrow_schema(self.location)
        if self.format == "webdataset":
            return webdataset.tar_schema(self.location)
        if self.format == "files":
            return webdataset.files_schema(self.location)
        if self.format in ("hub", "iterable"):
            features = self._iterable().features
            if features:
                return features.arrow_schema
        # JSON, CSV (or a streamed dataset without features): unify the types seen over one streaming pass.
        return infer_schema(self.rows())


def infer_schema(rows: Iterable[dict]) -> pa.Schema:
    """The unified Arrow schema of rows (unparsable rows, which hold only their error, are left out)."""
    schema = None
    for chunk in chunked((r for r in rows if ERROR_FIELD not in r), readers.CHUNK):
        seen = pa.Table.from_pylist([encodable(r) for r in chunk]).schema
        schema = seen if schema is None else pa.unify_schemas([schema, seen], promote_options="permissive")
    return schema or pa.schema([])


def row_view(shard: Shard, row: dict) -> dict:
    """One row as it is scored (see :meth:`Shard.views`)."""
    if shard.format in ("webdataset", "files"):
        return document_view(row, os.path.basename(shard.location))
    if shard.options.get("img2dataset") and row.get("status") not in (None, "success") and ERROR_FIELD not in row:
        detail = f": {row['error_message']}" if row.get("error_message") else ""
        return {**row, ERROR_FIELD: f"image: not downloaded by img2dataset ({row['status']}{detail})"[:200]}
    return row


def chunked(rows: Iterable, size: int) -> Iterator[list]:
    """Consecutive lists of `size` items (the last may be shorter), pulled lazily from `rows`."""
    chunk: list = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@dataclass
class Source:
    """An opened source: its shards and the files found beside them that are not data (with why)."""

    shards: list[Shard]
    skipped: list[Skipped] = field(default_factory=list)
    base: str = ""

    def note(self) -> str | None:
        """One line naming what was skipped (None when nothing was), e.g. for the command to print."""
        if not self.skipped:
            return None
        images = [s for s in self.skipped if s.why.startswith("image")]
        others = [s for s in self.skipped if not s.why.startswith("image")]
        parts = [f"{_rel(s.path, self.base)} ({s.why})" for s in others[:6]]
        if len(others) > 6:
            parts.append(f"and {len(others) - 6} more")
        if images:
            kinds = Counter(Path(s.path).suffix.lower() for s in images)
            parts.append(f"{len(images)} image file{'s' * (len(images) > 1)} ({', '.join(sorted(kinds))}) "
                         "that rows may refer to")
        n = len(self.skipped)
        return f"skipped {n} file{'s' * (n > 1)} that {'are' if n > 1 else 'is'} not data: " + ", ".join(parts)


def _rel(path: str, base: str) -> str:
    try:
        return os.path.relpath(path, base) if base else os.path.basename(path)
    except ValueError:
        return path


def _shard_name(path: str, base: str, taken: set[str]) -> str:
    stem = _rel(path, base)
    suffix = next((s for s in sorted(_SUFFIX_LIST, key=len, reverse=True) if stem.lower().endswith(s)), "")
    stem = stem[: len(stem) - len(suffix)] if suffix else stem
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem.replace(os.sep, "__")).strip(".") or "shard"
    while name in taken:
        name += "_"
    taken.add(name)
    return name


_SUFFIX_LIST = (".parquet", ".arrow", ".jsonl", ".ndjson", ".json", ".jsonl.gz", ".json.gz", ".csv", ".tar",
                ".tar.gz", ".tgz")


def _count(data: DataFile) -> int | None:
    if data.format == "parquet":
        return readers.count_parquet(data.path)
    if data.format == "arrow":
        return readers.count_arrow(data.path)
    if data.format == "webdataset":
        return webdataset.count_tar(data.path)
    if data.format == "files":
        return webdataset.count_files(data.path)
    return None


def _local_shards(found: Found, max_bytes: int | None) -> list[Shard]:
    shards, taken = [], set()
    for data in found.files:
        options = {"max_bytes": max_bytes} if max_bytes else {}
        stem = os.path.basename(data.path).split(".", 1)[0]
        stats = os.path.join(os.path.dirname(data.path), f"{stem}_stats.json")
        if data.format == "parquet" and os.path.isfile(stats):
            options["img2dataset"] = True
        name = _shard_name(data.path, found.base, taken)
        shards.append(Shard(name, data.format, data.path, num_rows=_count(data), options=options))
    return shards


def scan_source(
    source: Any,
    *,
    config: str | None = None,
    split: str = "train",
    revision: str | None = None,
    max_bytes: int | None = None,
) -> Source:
    """Open ``source`` as a :class:`Source` (shards in a stable order, skipped files); raises :class:`SourceError`.

    ``source`` is a local file, folder (searched recursively; see :mod:`unifilter_hf.sources.detect`) or glob,
    a Hub dataset id (streamed with ``config``/``split``/``revision``), or a ``datasets.IterableDataset`` (one
    shard per dataset shard). ``split`` also picks the split of a local ``DatasetDict`` folder. ``max_bytes``
    caps what one tar member or sample file may hold (default 64 MiB); a larger one is a row error.
    """
    if not isinstance(source, (str, os.PathLike)):
        if hasattr(source, "num_shards") and hasattr(source, "shard"):
            n = source.num_shards
            shards = [Shard(f"shard-{i:05d}", "iterable", index=i, num_shards=n, dataset=source) for i in range(n)]
            return Source(shards)
        raise SourceError(f"unsupported source {type(source).__name__}: pass a path, a glob or a Hub dataset id")
    text = os.fspath(source)
    path = Path(text).expanduser()
    if path.is_file():
        found = Found(files=[check_single_file(str(path))], base="")
    elif path.is_dir():
        found = find_data_files(str(path), split=split)
        if not found.files:
            raise SourceError(f"no data files in {text} ({_skipped_summary(found)}); point at a folder of .parquet, "
                              ".arrow, .jsonl, .json, .csv or .tar files")
    elif any(ch in text for ch in "*?["):
        found = _glob(text)
    elif looks_like_hub_id(text) and format_of(text) is None:
        return Source(hub_shards(text, config=config, split=split, revision=revision))
    else:
        raise SourceError(
            f"no such file, folder or glob: {text} (check the path, or give a Hub dataset id as owner/name)"
        )
    return Source(_local_shards(found, max_bytes), found.skipped, found.base)


def _skipped_summary(found: Found) -> str:
    if not found.skipped:
        return "it is empty"
    whys = Counter(s.why.split(" of ")[0] for s in found.skipped)
    return "found only " + ", ".join(f"{n} {why}" for why, n in whys.most_common(4))


def _glob(pattern: str) -> Found:
    paths = sorted(p for p in glob.glob(os.path.expanduser(pattern), recursive=True) if os.path.isfile(p))
    if not paths:
        raise SourceError(f"no files match {pattern!r}")
    base = os.path.commonpath(paths) if len(paths) > 1 else os.path.dirname(paths[0])
    base = base if os.path.isdir(base) else os.path.dirname(base)
    found = Found(base=base)
    for p in paths:
        why = metadata_kind(os.path.basename(p))
        if why or format_of(p) is None:
            found.skipped.append(Skipped(p, why or "not a data file type"))
        else:
            found.files.append(DataFile(os.path.abspath(p), format_of(p)))
    if not found.files:
        raise SourceError(f"no data files match {pattern!r} ({_skipped_summary(found)})")
    return found


def open_source(source: Any, *, config: str | None = None, split: str = "train", revision: str | None = None,
                streaming: bool = True, max_bytes: int | None = None) -> list[Shard]:
    """The shards of a source, in a stable order (see :func:`scan_source`); raises :class:`SourceError`.

    ``streaming=False`` is refused: a curation job never materialises its source.

    Example:
        >>> try:
        ...     open_source("/no/such/folder")
        ... except SourceError as err:
        ...     print(str(err)[:45])
        no such file, folder or glob: /no/such/folder
    """
    if not streaming:
        raise SourceError("curation always streams its source; drop streaming=False")
    return scan_source(source, config=config, split=split, revision=revision, max_bytes=max_bytes).shards


def hub_shards(
    dataset_id: str, *, config: str | None = None, split: str = "train", revision: str | None = None
) -> list[Shard]:
    """One :class:`Shard` per data file of a streamed ``load_dataset`` (a Hub id or a local dataset folder)."""
    ds = open_hub_dataset(dataset_id, config=config, split=split, revision=revision)
    n = ds.num_shards
    options = {"config": config, "split": split, "revision": revision}
    safe = dataset_id.replace("/", "__")
    return [Shard(f"{safe}-{i:05d}", "hub", dataset_id, i, n, options=options) for i in range(n)]
