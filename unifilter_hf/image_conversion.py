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

__all__ = ["TRANSPARENCY_FILL", "array_to_image", "is_array", "to_rgb"]

# Transparent web graphics are drawn to be seen on a light page; white reproduces what the reader saw.
TRANSPARENCY_FILL = (255, 255, 255)

_TRANSPARENT_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
_UINT16_MODES = {"I;16", "I;16L", "I;16B", "I;16N"}


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
        return _gray_to_rgb(np.asarray(image, dtype=np.float64) / 257.0)
    if mode == "I":
        values = np.asarray(image, dtype=np.float64)
        return _gray_to_rgb(values / 257.0 if values.size and values.max() > 255 else values)
    if mode == "F":
        values = np.nan_to_num(np.asarray(image, dtype=np.float64))
        in_unit_range = values.size and values.min() >= 0.0 and values.max() <= 1.0
        return _gray_to_rgb(values * 255.0 if in_unit_range else values)
    if mode in _TRANSPARENT_MODES or "transparency" in image.info:
        rgba = (image.convert("LA") if mode == "La" else image).convert("RGBA")
        background = Image.new("RGBA", rgba.size, (*TRANSPARENCY_FILL, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _gray_to_rgb(values: np.ndarray) -> Image.Image:
    gray = np.clip(np.rint(values), 0, 255).astype(np.uint8)
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
