"""Convert a decoded PIL image of any mode to 8-bit RGB: the one conversion every input path uses.

This module is deliberately tiny and free of I/O: the processor imports it, so it travels with a saved
checkpoint as remote code (loading images from paths, URLs or bytes lives in :mod:`.image_loading`).

Example:
    >>> from PIL import Image
    >>> to_rgb(Image.new("LA", (2, 2))).mode
    'RGB'
"""

from __future__ import annotations

import numpy as np
from PIL import Image

__all__ = ["TRANSPARENCY_FILL", "array_to_image", "decoded_bytes_per_pixel", "is_array", "to_rgb"]

# Transparent web graphics are drawn to be seen on a light page; white reproduces what the reader saw.
TRANSPARENCY_FILL = (255, 255, 255)

_TRANSPARENT_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
_UINT16_MODES = {"I;16", "I;16L", "I;16B", "I;16N"}
# Bytes per pixel of Pillow's own buffer (multi-band 8-bit modes are stored in 32 bits per pixel).
_STORAGE = {"1": 1, "L": 1, "P": 1, "I": 4, "F": 4, **{mode: 2 for mode in _UINT16_MODES}}
_STRIP_PIXELS = 1 << 18  # numeric modes are converted a strip at a time: no full-size float copy


def decoded_bytes_per_pixel(mode: str) -> int:
    """Memory one pixel of ``mode`` costs to decode and convert with :func:`to_rgb` (buffer + RGB result).

    Example:
        >>> decoded_bytes_per_pixel("RGB"), decoded_bytes_per_pixel("F")
        (4, 8)
    """
    if mode == "RGB":
        return 4
    extra = 12 if mode in _TRANSPARENT_MODES or mode == "P" else 4  # composite: RGBA + background + RGB
    return _STORAGE.get(mode, 4) + extra


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert a decoded image of any mode to 8-bit RGB.

    - ``RGBA``, ``LA``, ``PA``, ``P``/``L``/``RGB`` with a transparency key: composited on
      :data:`TRANSPARENCY_FILL` (white).
    - ``I;16*`` (16-bit grayscale): scaled by 1/257 and rounded, so 65535 -> 255 and 32768 -> 128.
    - ``I`` (32-bit int): treated as 16-bit when its maximum exceeds 255, else as 8-bit; clipped to range.
    - ``F`` (float): values within [0, 1] are scaled by 255, otherwise clipped to [0, 255]; NaN -> 0.
    - ``1``, ``L``, ``CMYK``, ``YCbCr``, ``LAB``, ``HSV``: Pillow's conversion (CMYK ignores ICC profiles).

    Example:
        >>> import numpy as np
        >>> from PIL import Image
        >>> gray16 = Image.fromarray(np.array([[65535, 32768]], dtype=np.uint16))
        >>> to_rgb(gray16).getpixel((1, 0))
        (128, 128, 128)
    """
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in _UINT16_MODES:
        return _gray_to_rgb(image, divide=257.0)
    if mode == "I":
        low, high = _extrema(image)
        return _gray_to_rgb(image, divide=257.0 if high > 255 else 1.0)
    if mode == "F":
        low, high = _extrema(image)
        return _gray_to_rgb(image, multiply=255.0 if low >= 0.0 and high <= 1.0 else 1.0)
    if mode in _TRANSPARENT_MODES or "transparency" in image.info:
        rgba = (image.convert("LA") if mode == "La" else image).convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*TRANSPARENCY_FILL, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _strips(image: Image.Image):
    """``(top, float64 values)`` per horizontal strip, NaN and infinities mapped as ``np.nan_to_num`` does."""
    width, height = image.size
    rows = max(1, _STRIP_PIXELS // max(width, 1))
    for top in range(0, height, rows):
        strip = image.crop((0, top, width, min(height, top + rows)))
        yield top, np.nan_to_num(np.asarray(strip, dtype=np.float64), copy=False)


def _extrema(image: Image.Image) -> tuple[float, float]:
    low, high = np.inf, -np.inf
    for _, values in _strips(image):
        if values.size:
            low, high = min(low, float(values.min())), max(high, float(values.max()))
    return (low, high) if low <= high else (0.0, 0.0)


def _gray_to_rgb(image: Image.Image, divide: float = 1.0, multiply: float = 1.0) -> Image.Image:
    gray = np.empty((image.height, image.width), dtype=np.uint8)
    for top, values in _strips(image):  # in place: one float strip at a time
        np.divide(values, divide, out=values)
        np.multiply(values, multiply, out=values)
        np.clip(np.rint(values, out=values), 0, 255, out=values)
        gray[top : top + values.shape[0]] = values
    return Image.fromarray(gray).convert("RGB")


def is_array(obj: object) -> bool:
    """True for a numpy array or a tensor (torch, or anything with ``.detach().cpu().numpy()``)."""
    return isinstance(obj, np.ndarray) or all(hasattr(obj, name) for name in ("detach", "cpu", "numpy", "shape"))


def array_to_image(array: object) -> Image.Image:
    """A numpy array or a torch tensor in the layouts torchvision and ``datasets`` produce, as a PIL image.

    Layouts: ``HW``, ``HWC`` (numpy, PIL, ``with_format("numpy")``) and ``CHW`` (torchvision,
    ``with_format("torch")``) with 1, 3 or 4 channels; a 3-D tensor whose layout is ambiguous is read as
    ``CHW``, a numpy array as ``HWC``. Values: ``uint8``, ``bool``, or floats in [0, 1] (scaled by 255) or in
    [0, 255]; other integer types go to Pillow. Normalized tensors (negative values) raise ``ValueError``.

    Example:
        >>> import numpy as np
        >>> array_to_image(np.ones((3, 4, 5), dtype=np.float32)).size  # CHW float 0..1
        (5, 4)
    """
    tensor = not isinstance(array, np.ndarray)
    if tensor:
        array = array.detach().cpu()
        array = (array.float() if array.is_floating_point() else array).numpy()
    values = np.asarray(array)
    if values.ndim == 3:
        chw, hwc = values.shape[0] in (1, 3, 4), values.shape[-1] in (1, 3, 4)
        if chw and (tensor or not hwc):
            values = values.transpose(1, 2, 0)
        elif not hwc:
            raise ValueError(f"image array of shape {list(values.shape)}: expected HW, HWC or CHW (1, 3 or 4 channels)")
        if values.shape[-1] == 1:
            values = values[..., 0]
    elif values.ndim != 2:
        raise ValueError(f"image array of shape {list(values.shape)}: expected HW, HWC or CHW")
    if values.dtype == np.bool_:
        values = values.astype(np.uint8) * 255
    elif values.dtype.kind == "f":
        finite = np.nan_to_num(values.astype(np.float64))
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        if low < 0 or high > 255:
            raise ValueError(f"float values in [{low:.3g}, {high:.3g}]: expected 0..1 or 0..255 (un-normalize first)")
        values = np.rint(finite * 255.0 if high <= 1.0 else finite).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(values))
