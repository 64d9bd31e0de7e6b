"""Open a data source as a list of shards whose rows come out with images *undecoded*.

A source is a Hub dataset id (streamed), a local folder or glob of Parquet / JSONL shards, webdataset tars
(DataComp-style ``jpg``/``png``/``webp`` + ``txt`` + ``json`` members, or OBELICS-style ``json`` documents with
base64 images), or an in-memory ``datasets.IterableDataset``. Each :class:`Shard` is a small picklable
description (Ray actors receive it) that streams its rows on demand, so nothing is ever materialised.

Images stay bytes (``{"bytes", "path"}`` dicts, raw tar members) so that a corrupt image becomes a per-row
error in :func:`~unifilter_hf.image_loading.load_image` instead of an exception inside ``datasets``.

Example:
    >>> import datasets
    >>> ds = datasets.Dataset.from_dict({"image": [None], "text": ["a cat"]},
    ...                                 features=datasets.Features({"image": datasets.Image(),
    ...                                                             "text": datasets.Value("string")}))
    >>> undecode_images(ds).features["image"].decode
    False
"""

from __future__ import annotations

import glob
import json
import os
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..errors import UniFilterError

__all__ = ["Shard", "SourceError", "chunked", "open_source", "undecode_images"]

_PARQUET = (".parquet",)
_JSONL = (".jsonl", ".json", ".jsonl.gz")
_TAR = (".tar", ".tar.gz", ".tgz")
_CHUNK = 256  # rows per Arrow batch read from Parquet


class SourceError(UniFilterError, ValueError):
    """A source that cannot be opened; the message is one line naming the fix."""


def undecode_images(ds):
    """Cast every ``datasets.Image()`` column, also inside ``List(Image())``, to ``decode=False``.

    Rows then hold ``{"bytes": ..., "path": ...}`` dicts, and a corrupt image is reported by our loader as a
    row error instead of raising while ``datasets`` iterates. Works on ``Dataset`` and ``IterableDataset``;
    a dataset without known features is returned as is.

    Example:
        >>> import datasets
        >>> feats = datasets.Features({"images": datasets.List(datasets.Image()),
        ...                            "texts": datasets.List(datasets.Value("string"))})
        >>> ds = datasets.Dataset.from_dict({"images": [[None]], "texts": [["hi"]]}, features=feats)
        >>> undecode_images(ds).features["images"].feature.decode
        False
    """
    features = getattr(ds, "features", None)
    if not features:
        return ds
    new = _undecoded(features)
    return ds if new == features else ds.cast(new)


def _undecoded(feature: Any) -> Any:
    import datasets

    if isinstance(feature, datasets.Image):
        return datasets.Image(decode=False)
    if isinstance(feature, datasets.Features):
        return datasets.Features({k: _undecoded(v) for k, v in feature.items()})
    if isinstance(feature, dict):
        return {k: _undecoded(v) for k, v in feature.items()}
    if isinstance(feature, datasets.List):
        return replace(feature, feature=_undecoded(feature.feature))
    if isinstance(feature, datasets.LargeList):
        return replace(feature, feature=_undecoded(feature.feature))
    return feature


@dataclass(frozen=True)
class Shard:
    """One unit of work: a file, a tar, or one shard of a streamed Hub dataset.

    ``name`` is stable and file-system safe (output files are named after it); ``rows()`` streams the rows as
    dicts with images undecoded; ``schema()`` is the Arrow schema used to write the rows back unchanged.

    Example:
        >>> import pyarrow as pa, pyarrow.parquet as pq, tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "part-0.parquet")
        >>> pq.write_table(pa.table({"text": ["a", "b"]}), path)
        >>> shard = open_source(path)[0]
        >>> shard.name, shard.num_rows, [r["text"] for r in shard.rows()]
        ('part-0', 2, ['a', 'b'])
    """

    name: str
    format: str  # "parquet" | "jsonl" | "webdataset" | "hub" | "iterable"
    location: str = ""
    index: int = 0
    num_shards: int = 1
    num_rows: int | None = None
    options: dict = field(default_factory=dict, compare=False)
    dataset: Any = field(default=None, compare=False, repr=False)  # an in-memory IterableDataset

    def rows(self) -> Iterator[dict]:
        """Stream the shard's rows (images undecoded)."""
        if self.format == "parquet":
            import pyarrow.parquet as pq

            for batch in pq.ParquetFile(self.location).iter_batches(batch_size=_CHUNK):
                yield from batch.to_pylist()
        elif self.format == "jsonl":
            yield from _jsonl_rows(self.location)
        elif self.format == "webdataset":
            yield from webdataset_rows(self.location)
        else:
            yield from self._streamed()

    def _streamed(self) -> Iterator[dict]:
        ds = self._iterable()
        if ds.num_shards > 1 or self.num_shards > 1:
            ds = ds.shard(num_shards=self.num_shards, index=self.index)
        yield from undecode_images(ds)

    def _iterable(self):
        if self.dataset is not None:
            return self.dataset
        import datasets

        opts = self.options
        return datasets.load_dataset(
            self.location, opts.get("config"), split=opts.get("split", "train"),
            revision=opts.get("revision"), streaming=True,
        )

    def schema(self) -> pa.Schema:
        """The Arrow schema of the rows as written back (keeps ``datasets`` Image metadata)."""
        if self.format == "parquet":
            import pyarrow.parquet as pq

            return pq.read_schema(self.location)
        if self.format == "webdataset":
            return _webdataset_schema(self.location)
        if self.format in ("hub", "iterable"):
            features = self._iterable().features
            if features:
                return features.arrow_schema
        # JSONL (or a streamed dataset without features): unify the types seen over one streaming pass.
        schema = None
        for chunk in chunked(self.rows(), _CHUNK):
            seen = pa.Table.from_pylist(chunk).schema
            schema = seen if schema is None else pa.unify_schemas([schema, seen], promote_options="permissive")
        return schema or pa.schema([])


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


def _jsonl_rows(path: str) -> Iterator[dict]:
    import gzip

    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                row = {"__error__": f"row: line {number} is not valid JSON"}
            yield row if isinstance(row, dict) else {"__error__": f"row: line {number} is not a JSON object"}


# ------------------------------------------------------------------------------------------- webdataset


def _split_member(name: str) -> tuple[str, str]:
    """``"dir/000123.jpg"`` -> ``("dir/000123", "jpg")``; the key is everything before the first dot."""
    folder, base = os.path.split(name)
    stem, _, ext = base.partition(".")
    return os.path.join(folder, stem) if folder else stem, ext.lower()


def webdataset_rows(path: str) -> Iterator[dict]:
    """Rows of a webdataset tar: ``{"__key__": key, ext: bytes, ...}`` per group of consecutive members.

    Members stay bytes (the loader decodes them, so a corrupt image is a row error). A ``json`` member that is
    an object is also parsed, and its document fields are exposed for layout detection (see
    :func:`document_view`); the raw bytes are what gets written back.
    """
    with tarfile.open(path, "r|*") as tar:
        key, row = None, {}
        for member in tar:
            if not member.isfile():
                continue
            member_key, ext = _split_member(member.name)
            if not ext:
                continue
            if member_key != key and row:
                yield row
                row = {}
            key = member_key
            row["__key__"] = key
            row[ext] = tar.extractfile(member).read()
        if row:
            yield row


def document_view(row: dict) -> dict:
    """The columns a webdataset row is scored from: the members, plus the fields of a ``json`` document.

    OBELICS-style tars keep a document in one ``json`` member: ``texts`` with either ``images`` (parallel) or
    ``image_info`` (parallel entries with ``image_base64``, else mmc4 entries with ``matched_text_index``).
    Parallel ``image_info`` is turned into an OBELICS ``images`` list; mmc4 entries keep their layout.

    Example:
        >>> view = document_view({"__key__": "d0", "json": b'{"texts": ["Hi", null], '
        ...                       b'"image_info": [null, {"image_base64": "AAAA"}]}'})
        >>> view["images"], view["texts"]
        ([None, 'AAAA'], ['Hi', None])
    """
    raw = row.get("json")
    if raw is None or any(k in row for k in ("jpg", "jpeg", "png", "webp", "txt")):
        return row
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return {**row, "__error__": "json: member is not valid JSON"}
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


def _webdataset_schema(path: str) -> pa.Schema:
    # Random-access listing reads only the member headers.
    with tarfile.open(path) as tar:
        exts = sorted({_split_member(m.name)[1] for m in tar.getmembers() if m.isfile()} - {""})
    return pa.schema([("__key__", pa.string())] + [(ext, pa.binary()) for ext in exts])


def _tar_count(path: str) -> int:
    with tarfile.open(path) as tar:
        return len({_split_member(m.name)[0] for m in tar.getmembers() if m.isfile()})


# ----------------------------------------------------------------------------------------------- sources


def _format_of(path: str) -> str | None:
    lower = path.lower()
    if lower.endswith(_PARQUET):
        return "parquet"
    if lower.endswith(_JSONL):
        return "jsonl"
    if lower.endswith(_TAR):
        return "webdataset"
    return None


def _shard_name(path: str, base: str, taken: set[str]) -> str:
    rel = os.path.relpath(path, base) if base else os.path.basename(path)
    stem = rel
    for suffix in sorted(_PARQUET + _JSONL + _TAR, key=len, reverse=True):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem.replace(os.sep, "__"))
    while name in taken:
        name += "_"
    taken.add(name)
    return name


def _local_shards(paths: list[str], base: str) -> list[Shard]:
    shards, taken = [], set()
    for path in sorted(paths):
        fmt = _format_of(path)
        if fmt is None:
            continue
        num_rows = None
        if fmt == "parquet":
            import pyarrow.parquet as pq

            num_rows = pq.ParquetFile(path).metadata.num_rows
        elif fmt == "webdataset":
            num_rows = _tar_count(path)
        shards.append(Shard(_shard_name(path, base, taken), fmt, os.path.abspath(path), num_rows=num_rows))
    return shards


def looks_like_hub_id(source: str) -> bool:
    """``owner/name`` or ``name`` (no glob, not a relative path); callers check local paths first."""
    parts = source.split("/")
    return 1 <= len(parts) <= 2 and all(parts) and not source.startswith((".", "~")) and "*" not in source


def open_source(
    source: Any,
    *,
    config: str | None = None,
    split: str = "train",
    revision: str | None = None,
    streaming: bool = True,
) -> list[Shard]:
    """The shards of a source, in a stable order; raises :class:`SourceError` with the fix.

    ``source`` is a local file, folder (searched recursively) or glob of ``.parquet`` / ``.jsonl`` /
    ``.tar`` files, a Hub dataset id (streamed with ``config``/``split``/``revision``), or a
    ``datasets.IterableDataset`` (one shard per dataset shard). ``streaming=False`` is refused: a curation job
    never materialises its source.

    Example:
        >>> try:
        ...     open_source("/no/such/folder")
        ... except SourceError as err:
        ...     print(str(err)[:45])
        no such file, folder or glob: /no/such/folder
    """
    if not streaming:
        raise SourceError("curation always streams its source; drop streaming=False")
    if not isinstance(source, (str, os.PathLike)):
        if hasattr(source, "num_shards") and hasattr(source, "shard"):
            n = source.num_shards
            return [Shard(f"shard-{i:05d}", "iterable", index=i, num_shards=n, dataset=source) for i in range(n)]
        raise SourceError(f"unsupported source {type(source).__name__}: pass a path, a glob or a Hub dataset id")
    text = os.fspath(source)
    if any(ch in text for ch in "*?["):
        paths = [p for p in glob.glob(text, recursive=True) if os.path.isfile(p)]
        base = os.path.commonpath(paths) if len(paths) > 1 else ""
        base = base if base and os.path.isdir(base) else (os.path.dirname(paths[0]) if paths else "")
        return _checked(_local_shards(paths, base), text)
    path = Path(text)
    if path.is_file():
        if _format_of(text) is None:
            raise SourceError(f"unknown format {path.name!r}: use .parquet, .jsonl or .tar (webdataset) files")
        return _local_shards([text], "")
    if path.is_dir():
        files = [str(p) for p in sorted(path.rglob("*")) if p.is_file() and not p.name.startswith(".")]
        return _checked(_local_shards(files, text), text)
    if looks_like_hub_id(text):
        return hub_shards(text, config=config, split=split, revision=revision)
    raise SourceError(
        f"no such file, folder or glob: {text} (check the path, or give a Hub dataset id as owner/name)"
    )


def _checked(shards: list[Shard], where: str) -> list[Shard]:
    if not shards:
        raise SourceError(f"no .parquet, .jsonl or .tar shards found in {where}: point at the data files")
    return shards


def hub_shards(
    dataset_id: str, *, config: str | None = None, split: str = "train", revision: str | None = None
) -> list[Shard]:
    """One :class:`Shard` per data file of a streamed ``load_dataset`` (a Hub id or a local dataset folder)."""
    import datasets

    try:
        ds = datasets.load_dataset(dataset_id, config, split=split, revision=revision, streaming=True)
    except Exception as err:  # noqa: BLE001 - any failure here is a one-line, user-facing source problem
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SourceError(
            f"cannot open Hub dataset {dataset_id!r} ({first[:200]}); check the id, --config, --split and "
            "--revision, and that HF_HUB_OFFLINE is unset"
        ) from None
    n = ds.num_shards
    options = {"config": config, "split": split, "revision": revision}
    safe = dataset_id.replace("/", "__")
    return [Shard(f"{safe}-{i:05d}", "hub", dataset_id, i, n, options=options) for i in range(n)]

