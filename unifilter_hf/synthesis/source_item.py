"""One real source to generate four levels for: a caption source or a document source, and its images.

A caption source has one image and optionally a reference caption; a document source has several images and
optionally a reference document as OBELICS slots. Prompts and backends both read it, so it stands alone.

Example:
    >>> from PIL import Image
    >>> item = SourceItem("demo/1", "caption", [Image.new("RGB", (4, 4))], reference="a black square")
    >>> item.num_images
    1
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from .levels import KINDS, canonical_kind

#: Anything :func:`load_source_image` can turn into a PIL image.
ImageSource = Image.Image | str | os.PathLike | bytes | dict | Callable[[], Image.Image]


def load_source_image(src: ImageSource) -> Image.Image:
    """Decode one image source to RGB (callables are lazy loaders, e.g. the bundled photographs)."""
    from ..image_loading import load_image

    return load_image(src() if callable(src) else src)


@dataclass
class SourceItem:
    """One real source to generate four levels for.

    ``reference`` is a caption (``str``) for caption items, or a document for document items: a list of
    slots where a ``str`` is a text and ``None`` stands for the next image of ``images`` in order.
    ``image_ids`` are stable identities of the images (paths, ``"bundled:astronaut"``); they keep a source
    image out of two splits and let generators tell "another image" from "this image".
    """

    id: str
    kind: str
    images: list[ImageSource]
    reference: str | list[str | None] | None = None
    image_ids: list[str] | None = None
    tags: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.kind = canonical_kind(self.kind)
        if self.kind not in KINDS:
            raise ValueError(f"{self.id}: kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "caption" and len(self.images) != 1:
            raise ValueError(f"{self.id}: a caption source has exactly one image, got {len(self.images)}")
        if not self.images:
            raise ValueError(f"{self.id}: a source needs at least one image")
        if self.image_ids is None:
            self.image_ids = [_default_image_id(self.id, i, src) for i, src in enumerate(self.images)]
        if isinstance(self.reference, list):
            n_slots = sum(1 for s in self.reference if s is None)
            if n_slots != len(self.images):
                raise ValueError(f"{self.id}: reference has {n_slots} image slots for {len(self.images)} images")

    @property
    def num_images(self) -> int:
        return len(self.images)

    def load_images(self) -> list[Image.Image]:
        return [load_source_image(src) for src in self.images]

    def reference_slots(self) -> list[str | int] | None:
        """The reference document as slots: ``str`` texts and ``int`` image indices (0-based)."""
        if not isinstance(self.reference, list):
            return None
        slots: list[str | int] = []
        k = 0
        for s in self.reference:
            if s is None:
                slots.append(k)
                k += 1
            else:
                slots.append(s)
        return slots


def _default_image_id(item_id: str, index: int, src: ImageSource) -> str:
    if isinstance(src, str | os.PathLike):
        return os.path.abspath(os.fspath(src))
    return f"{item_id}#{index}"
