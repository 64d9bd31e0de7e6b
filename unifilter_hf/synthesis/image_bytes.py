"""Any image source as encoded bytes: the one place the runner's image store and the builder embed images.

A file keeps its original bytes (no re-encoding); a bundled photograph gives its PNG bytes, made once per
process; anything else is decoded and written as PNG.

Example:
    >>> from PIL import Image
    >>> data, name = image_bytes(Image.new("RGB", (2, 2)))
    >>> data[:4], name
    (b'\\x89PNG', 'image.png')
"""

from __future__ import annotations

import io
import os
from pathlib import Path

from .source_item import ImageSource, load_source_image


def image_bytes(src: ImageSource) -> tuple[bytes, str]:
    """``(encoded bytes, file name)`` of one image source; the name's suffix tells the format."""
    if isinstance(src, str | os.PathLike) and Path(src).is_file():
        return Path(src).read_bytes(), Path(src).name
    if hasattr(src, "encoded"):  # bundled photographs (BundledPhoto)
        return src.encoded(), f"{getattr(src, 'name', 'image')}.png"
    buf = io.BytesIO()
    load_source_image(src).save(buf, format="PNG")
    return buf.getvalue(), "image.png"
