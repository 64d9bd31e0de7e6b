"""Where source images (and optional reference texts) come from: a folder or a (Hub) dataset.

Folder layouts:
- captions: every image file under the folder (sorted); a reference caption from ``captions.jsonl``
  (``{"file": "<relative path>", "caption": "..."}`` per line) or from a sidecar ``<name>.txt``.
- documents: every sub-folder is one document, its images in name order; an optional ``document.json``
  (``{"texts": [...], "images": ["<file name>" | null, ...]}``, OBELICS slots) gives the reference document
  and the image order.

Datasets: anything ``datasets.load_dataset`` opens (a Hub id, or a local folder of parquet/json files), with
an image column (captions) or OBELICS ``images``/``texts`` columns (documents). Images are kept undecoded
until a backend needs them.

Example:
    >>> # items = folder_items("photos/", kind="caption")
    >>> # items = dataset_items("my-org/my-images", split="train", text_column="caption", limit=1000)
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from .backends.base import SourceItem
from .levels import KINDS, canonical_kind

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._/-]+", "_", text).strip("_") or "item"


def folder_items(folder: str | os.PathLike, kind: str = "caption") -> list[SourceItem]:
    """Sources from a folder (see the module docstring for the layout)."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"not a folder: {root}")
    prefix = _slug(root.resolve().name)
    kind = canonical_kind(kind)
    if kind == "caption":
        refs = _caption_refs(root)
        items = []
        for path in sorted(p for p in root.rglob("*") if _is_image(p)):
            rel = path.relative_to(root).as_posix()
            sidecar = path.with_suffix(".txt")
            ref = refs.get(rel) or (sidecar.read_text(encoding="utf-8").strip() if sidecar.is_file() else None)
            items.append(SourceItem(f"{prefix}/{_slug(rel)}", "caption", [path], reference=ref or None,
                                    image_ids=[str(path.resolve())]))
        return items
    if kind == "document":
        items = []
        for sub in sorted(p for p in root.iterdir() if p.is_dir()):
            images, reference = _document_folder(sub)
            if images:
                items.append(SourceItem(f"{prefix}/{_slug(sub.name)}", "document", images,
                                        reference=reference, image_ids=[str(p.resolve()) for p in images]))
        return items
    raise ValueError(f"kind must be 'caption' or 'document', got {kind!r}")


def _caption_refs(root: Path) -> dict[str, str]:
    path = root / "captions.jsonl"
    if not path.is_file():
        return {}
    refs = {}
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                refs[str(row["file"])] = str(row["caption"])
    return refs


def _document_folder(sub: Path) -> tuple[list[Path], list[str | None] | None]:
    doc = sub / "document.json"
    if not doc.is_file():
        return sorted(p for p in sub.iterdir() if _is_image(p)), None
    data = json.loads(doc.read_text(encoding="utf-8"))
    texts, names = list(data["texts"]), list(data["images"])
    if len(texts) != len(names):
        raise ValueError(f"{doc}: texts and images must be parallel lists")
    images = [sub / n for n in names if n is not None]
    reference = [t if n is None else None for t, n in zip(texts, names)]
    return images, reference


def dataset_items(
    name_or_path: str,
    *,
    split: str = "train",
    kind: str = "caption",
    image_column: str = "image",
    text_column: str | None = None,
    images_column: str = "images",
    texts_column: str = "texts",
    id_column: str | None = None,
    limit: int | None = None,
    **load_kwargs: Any,
) -> list[SourceItem]:
    """Sources from ``datasets.load_dataset(name_or_path, split=split, **load_kwargs)``.

    Captions read ``image_column`` (and ``text_column`` as the reference, if given); documents read the
    OBELICS ``images_column``/``texts_column`` lists (the texts become the reference document).
    """
    import datasets

    kind = canonical_kind(kind)
    if kind not in KINDS:
        raise ValueError(f"kind must be 'caption' or 'document', got {kind!r}")
    ds = datasets.load_dataset(name_or_path, split=split, **load_kwargs)
    if limit is not None:
        ds = ds.select(range(min(limit, len(ds)))) if hasattr(ds, "select") else ds.take(limit)
    ds = _undecoded(ds, image_column if kind == "caption" else images_column)
    prefix = f"{_slug(Path(name_or_path).name if os.path.isdir(name_or_path) else name_or_path)}/{_slug(split)}"
    items = []
    for idx, row in enumerate(ds):
        key = _slug(str(row[id_column])) if id_column else str(idx)
        sid = f"{prefix}/{key}"
        if kind == "caption":
            ref = row.get(text_column) if text_column else None
            src = row[image_column]
            items.append(SourceItem(sid, "caption", [src], reference=ref or None,
                                    image_ids=[_image_id(src, f"{sid}#0")]))
        else:
            images, texts = list(row[images_column]), list(row.get(texts_column) or [None] * len(row[images_column]))
            srcs = [im for im in images if im is not None]
            if not srcs:
                continue
            has_text = any(t for t in texts)
            reference = [t if im is None else None for t, im in zip(texts, images)] if has_text else None
            items.append(SourceItem(sid, "document", srcs, reference=reference,
                                    image_ids=[_image_id(s, f"{sid}#{k}") for k, s in enumerate(srcs)]))
    return items


def _undecoded(ds, column: str):
    """Keep image columns as ``{"bytes", "path"}`` so pixels are decoded only when a backend needs them."""
    import datasets

    feat = (ds.features or {}).get(column)
    if isinstance(feat, datasets.Image):
        return ds.cast_column(column, datasets.Image(decode=False))
    inner = getattr(feat, "feature", None)
    if isinstance(inner, datasets.Image):
        return ds.cast_column(column, datasets.List(datasets.Image(decode=False)))
    return ds


def _image_id(src: Any, fallback: str) -> str:
    if isinstance(src, dict) and src.get("path"):
        return str(src["path"])
    if isinstance(src, str):
        return src
    return fallback
