"""The one in-memory form of a scorable input: a caption or an interleaved document.

Every data source (Hub rows, pipeline inputs, synthetic records, training rows) is turned into a
:class:`Sample` before it reaches the processor, so splicing, padding and image decoding exist once.

Example:
    >>> from PIL import Image
    >>> img = Image.new("RGB", (8, 8))
    >>> Sample.caption(img, "a black square").kind
    'caption'
    >>> Sample.document(["Intro.", None], [None, img]).num_images
    1
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from PIL import Image

from .errors import UniFilterError


@dataclass
class Sample:
    """A caption (one image, one text) or an OBELICS-style document (parallel slot lists).

    ``texts`` and ``images`` are parallel: for a document each position holds exactly one of a text or an
    image; for a caption both lists have one entry, ``texts[0]`` the caption and ``images[0]`` the image.
    """

    kind: Literal["caption", "document"]
    texts: list[str | None]
    images: list[Image.Image | None]
    meta: dict = field(default_factory=dict)

    @classmethod
    def caption(cls, image: Image.Image, text: str) -> Sample:
        return cls("caption", [text], [image])

    @classmethod
    def document(cls, texts: list[str | None], images: list[Image.Image | None]) -> Sample:
        if len(texts) != len(images):
            raise ValueError(f"texts and images must be parallel lists, got {len(texts)} and {len(images)}")
        return cls("document", list(texts), list(images))

    @property
    def image_list(self) -> list[Image.Image]:
        """The images in reading order."""
        return [im for im in self.images if im is not None]

    @property
    def num_images(self) -> int:
        return len(self.image_list)


class SampleError(UniFilterError, ValueError):
    """A row that cannot be scored; ``reason`` is the short text stored in the error column."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason
