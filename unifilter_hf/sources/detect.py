"""Which files of a folder are data: layouts recognised by their markers, metadata skipped by name.

Recognised, in this order (docs/inputs.md):

- ``datasets`` ``save_to_disk`` folders (``state.json`` + ``dataset_info.json`` + ``*.arrow``): the Arrow files
  listed in ``state.json``; ``DatasetDict`` folders (``dataset_dict.json``): the folder of the chosen split.
- img2dataset outputs (``NNNNN_stats.json`` beside the shards): in the ``webdataset`` format the ``.tar`` files
  are the data and ``NNNNN.parquet`` is the download log; in the ``files`` format each ``NNNNN/`` folder of
  ``000000000.jpg`` + ``.txt`` + ``.json`` is a shard; in the ``parquet`` format the ``.parquet`` files hold the
  rows and their image bytes.
- Any other folder: every ``.parquet``, ``.arrow``, ``.jsonl``/``.json``/``.jsonl.gz``, ``.csv`` and
  ``.tar``/``.tar.gz``/``.tgz`` file, searched recursively; a folder of images with same-named ``.txt``
  captions is read like img2dataset's ``files`` format.

Skipped and reported: known metadata files (``dataset_info.json``, ``state.json``, ``dataset_dict.json``,
``*_stats.json``, Spark's ``_SUCCESS``, ...), img2dataset download logs, image files (rows point at them),
hidden files and anything of another type.

Example:
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> for name in ["00000.tar", "00000.parquet", "00000_stats.json"]:
    ...     _ = open(os.path.join(folder, name), "wb").write(b"")
    >>> found = find_data_files(folder)
    >>> [(f.path.rsplit(os.sep, 1)[-1], f.format) for f in found.files], [s.why for s in found.skipped]
    ([('00000.tar', 'webdataset')], ['img2dataset download log of 00000.tar', 'img2dataset stats'])
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import SourceError
from .webdataset import IMAGE_EXTS, split_member

__all__ = ["DataFile", "Found", "Skipped", "find_data_files", "format_of"]

# suffix -> format, longest suffixes first
_SUFFIXES = [
    (".jsonl.gz", "jsonl"), (".json.gz", "json"), (".tar.gz", "webdataset"), (".parquet", "parquet"),
    (".arrow", "arrow"), (".jsonl", "jsonl"), (".ndjson", "jsonl"), (".json", "json"), (".csv", "csv"),
    (".tgz", "webdataset"), (".tar", "webdataset"),
]
DATA_SUFFIXES = tuple(s for s, _ in _SUFFIXES)
_METADATA = {
    "dataset_info.json": "datasets metadata",
    "state.json": "datasets metadata",
    "dataset_dict.json": "datasets metadata",
    "stats.json": "statistics",
    "_success": "Spark marker",
    "_common_metadata": "Parquet metadata",
    "_metadata": "Parquet metadata",
}
_STATS = re.compile(r".*_stats\.json$", re.IGNORECASE)
_CAPTION_EXTS = ("txt", "caption", "text")


@dataclass(frozen=True)
class DataFile:
    """A data file (or an img2dataset ``files`` folder) and its format."""

    path: str
    format: str  # parquet | arrow | jsonl | json | csv | webdataset | files
    options: dict = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Skipped:
    path: str
    why: str


@dataclass
class Found:
    files: list[DataFile] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    base: str = ""


def format_of(path: str) -> str | None:
    """The data format of a file by its name, or None.

    Example:
        >>> format_of("a/train-00000.parquet"), format_of("x.tgz"), format_of("notes.txt")
        ('parquet', 'webdataset', None)
    """
    lower = path.lower()
    return next((fmt for suffix, fmt in _SUFFIXES if lower.endswith(suffix)), None)


def metadata_kind(name: str) -> str | None:
    """Why a file is metadata by its name, or None."""
    lower = name.lower()
    if lower in _METADATA:
        return _METADATA[lower]
    if _STATS.fullmatch(lower):
        return "img2dataset stats"
    return None


def _is_image(name: str) -> bool:
    return split_member(name)[1] in IMAGE_EXTS


def check_single_file(path: str) -> DataFile:
    """A file named on the command line: a data file, or a one-line refusal."""
    name = os.path.basename(path)
    why = metadata_kind(name)
    if why:
        raise SourceError(f"{path} is {why}, not data: point at the folder that holds it, or at its data files")
    fmt = format_of(path)
    if fmt is None:
        raise SourceError(
            f"unknown file type {name!r}: give .parquet, .arrow, .jsonl, .json, .csv or .tar/.tgz files, or a "
            "folder of them"
        )
    return DataFile(os.path.abspath(path), fmt)


def find_data_files(folder: str, *, split: str | None = None) -> Found:
    """The data files under ``folder`` (recursively, in a stable order) and what was skipped, with why."""
    root = Path(folder)
    if (root / "dataset_dict.json").is_file():
        return _dataset_dict(root, split)
    if (root / "state.json").is_file() and any(root.glob("*.arrow")):
        return _saved_dataset(root)
    found = Found(base=str(root))
    _walk(root, found)
    return found


def _dataset_dict(root: Path, split: str | None) -> Found:
    try:
        splits = json.loads((root / "dataset_dict.json").read_text())["splits"]
    except (ValueError, KeyError, TypeError):
        raise SourceError(f"{root / 'dataset_dict.json'} is not a datasets DatasetDict file") from None
    chosen = split if split in splits else (splits[0] if len(splits) == 1 and split in (None, "train") else None)
    if chosen is None:
        raise SourceError(f"{root} is a DatasetDict without a {split!r} split: pass --split one of {splits}")
    found = _saved_dataset(root / chosen)
    found.base = str(root)
    others = [s for s in splits if s != chosen]
    found.skipped += [Skipped(str(root / s), f"split {s} (choose it with --split {s})") for s in others]
    found.skipped.append(Skipped(str(root / "dataset_dict.json"), "datasets metadata"))
    return found


def _saved_dataset(root: Path) -> Found:
    found = Found(base=str(root))
    try:
        state = json.loads((root / "state.json").read_text())
        names = [entry["filename"] for entry in state["_data_files"]]
    except (OSError, ValueError, KeyError, TypeError):
        names = sorted(p.name for p in root.glob("*.arrow"))
    for name in names:
        path = root / name
        if not path.is_file():
            raise SourceError(f"{root} is a save_to_disk folder whose state.json lists a missing file {name}")
        found.files.append(DataFile(os.path.abspath(path), "arrow"))
    for path in sorted(root.iterdir()):
        if path.name not in names and not path.name.startswith("."):
            found.skipped.append(Skipped(str(path), metadata_kind(path.name) or "not listed in state.json"))
    return found


def _walk(folder: Path, found: Found) -> None:
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    files = [p for p in entries if p.is_file()]
    dirs = [p for p in entries if p.is_dir()]
    names = {p.name for p in entries}
    if _is_files_folder(files):
        found.files.append(DataFile(os.path.abspath(folder), "files"))
        return
    for path in files:
        why = metadata_kind(path.name)
        fmt = None if why else format_of(path.name)
        stem = path.name.split(".", 1)[0]
        if fmt == "parquet" and (f"{stem}.tar" in names or (folder / stem).is_dir()):
            why = f"img2dataset download log of {stem}.tar" if f"{stem}.tar" in names else \
                f"img2dataset download log of {stem}/"
        elif fmt is None and not why:
            why = "image (rows refer to it)" if _is_image(path.name) else "not a data file type"
        if why:
            found.skipped.append(Skipped(str(path), why))
        else:
            found.files.append(DataFile(os.path.abspath(path), fmt))
    for sub in dirs:
        if (sub / "state.json").is_file() and any(sub.glob("*.arrow")):
            saved = _saved_dataset(sub)
            found.files += saved.files
            found.skipped += saved.skipped
        elif (sub / "dataset_dict.json").is_file():
            found.skipped.append(Skipped(str(sub), "a DatasetDict folder inside another source: point at it"))
        else:
            _walk(sub, found)


def _is_files_folder(files: list[Path]) -> bool:
    """img2dataset's ``files`` format: images with same-named caption (``.txt``) files."""
    images = {split_member(p.name)[0] for p in files if _is_image(p.name)}
    captions = {split_member(p.name)[0] for p in files if split_member(p.name)[1] in _CAPTION_EXTS}
    others = [p for p in files if format_of(p.name) not in (None, "json") and not metadata_kind(p.name)]
    return bool(images & captions) and not others
