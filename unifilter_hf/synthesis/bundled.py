"""The bundled mini set: real photographs shipped by scikit-image and scikit-learn, with our captions.

Only text lives in the package (``data/bundled_captions.json``, ``data/bundled_documents.json``); pixels are
read at run time from ``skimage.data`` and ``sklearn.datasets.load_sample_image`` (install dependencies), so
the set works offline and the repository carries no image files. 21 photographs have a hand-written detailed
positive caption; 5 positive multi-image documents are built from them. With the rule-based backend this
yields a four-level caption set and a four-level document set with no model and no network.

Example:
    >>> items = bundled_items("caption")
    >>> len(items), items[0].id
    (21, 'bundled/astronaut')
    >>> bundled_photo("coffee").size
    (600, 400)
"""

from __future__ import annotations

import functools
import io
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from PIL import Image

from .backends.base import SourceItem
from .levels import canonical_kind


@functools.cache
def _load_json(name: str) -> dict[str, Any]:
    # data/ is package data, not a package: resolve it from the synthesis package
    path = resources.files("unifilter_hf.synthesis").joinpath("data", name)
    return json.loads(path.read_text(encoding="utf-8"))


def bundled_photos() -> list[dict[str, Any]]:
    """The photograph table: ``name``, ``package``, ``loader``, ``tags``, ``caption``."""
    return list(_load_json("bundled_captions.json")["photos"])


def bundled_documents() -> list[dict[str, Any]]:
    """The positive document table: ``id``, ``title``, ``tags`` and ``slots`` (``{"text"}``/``{"image"}``)."""
    return list(_load_json("bundled_documents.json")["documents"])


@functools.cache
def _photo_entry(name: str) -> dict[str, Any]:
    for entry in bundled_photos():
        if entry["name"] == name:
            return entry
    raise KeyError(f"no bundled photograph named {name!r}")


def bundled_photo(name: str) -> Image.Image:
    """Load one bundled photograph as an RGB PIL image (grayscale photos are converted to RGB)."""
    return _decoded(name).copy()


@functools.cache
def _decoded(name: str) -> Image.Image:
    entry = _photo_entry(name)
    if entry["package"] == "sklearn":
        from sklearn.datasets import load_sample_image

        array = load_sample_image(entry["loader"])
    else:
        from skimage import data

        array = getattr(data, entry["loader"])()
        if isinstance(array, tuple):  # stereo pairs: keep the left view
            array = array[0]
    return Image.fromarray(array).convert("RGB")


@functools.cache
def _png_bytes(name: str) -> bytes:
    buf = io.BytesIO()
    _decoded(name).save(buf, format="PNG")
    return buf.getvalue()


@dataclass(frozen=True)
class BundledPhoto:
    """A lazy, hashable handle on one bundled photograph: call it for the PIL image.

    ``encoded()`` gives PNG bytes, made once per process, so writers do not re-encode the same photo.
    """

    name: str

    def __call__(self) -> Image.Image:
        return bundled_photo(self.name)

    def encoded(self) -> bytes:
        return _png_bytes(self.name)


def _loader(name: str) -> BundledPhoto:
    return BundledPhoto(name)


def bundled_caption_items() -> list[SourceItem]:
    """One caption source per photograph, the hand-written caption as its positive reference."""
    return [
        SourceItem(
            id=f"bundled/{p['name']}",
            kind="caption",
            images=[_loader(p["name"])],
            reference=p["caption"],
            image_ids=[f"bundled:{p['name']}"],
            tags=list(p["tags"]),
            meta={"source": "bundled"},
        )
        for p in bundled_photos()
    ]


def bundled_document_items() -> list[SourceItem]:
    """One document source per bundled document, its slots as the positive reference."""
    items = []
    for doc in bundled_documents():
        names = [s["image"] for s in doc["slots"] if "image" in s]
        tags = sorted({t for n in names for t in _photo_entry(n)["tags"]} | set(doc["tags"]))
        items.append(
            SourceItem(
                id=f"bundled-doc/{doc['id']}",
                kind="document",
                images=[_loader(n) for n in names],
                reference=[s.get("text") for s in doc["slots"]],
                image_ids=[f"bundled:{n}" for n in names],
                tags=tags,
                meta={"source": "bundled", "title": doc["title"]},
            )
        )
    return items


def bundled_items(kind: str = "both") -> list[SourceItem]:
    """Bundled sources of ``kind``: ``"caption"``, ``"document"`` or ``"both"``."""
    kind = canonical_kind(kind)
    if kind not in ("caption", "document", "both"):
        raise ValueError(f"kind must be caption, document or both, got {kind!r}")
    items: list[SourceItem] = []
    if kind in ("caption", "both"):
        items += bundled_caption_items()
    if kind in ("document", "both"):
        items += bundled_document_items()
    return items
