"""Load one image from whatever a dataset row holds (PIL, path, URL, base64, bytes) as RGB, with limits.

Every image is fully decoded here (a truncated file fails now, not inside a batch), EXIF-rotated and
converted by :func:`~unifilter_hf.image_conversion.to_rgb`. Problems raise :class:`SampleError` with a short
reason that becomes the row's error.

Example:
    >>> try:
    ...     load_image(b"not an image")
    ... except SampleError as err:
    ...     print(err.reason)
    image: not a recognized image format
"""

from __future__ import annotations

import base64
import binascii
import http.client
import io
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError

from .image_conversion import array_to_image, is_array, to_rgb
from .sample import SampleError

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_MAX_PIXELS", "decode_base64", "load_image"]

# Below Pillow's own warning threshold (89.5M), so our limit is the one users meet; any real photo fits.
DEFAULT_MAX_PIXELS = 64 * 1024 * 1024
DEFAULT_MAX_BYTES = 64 * 1024 * 1024

_USER_AGENT = "unifilter-hf/0.1 (image fetch for data-quality scoring)"
_REASON_CHARS = 160
_BASE64_RE = re.compile(r"[A-Za-z0-9+/=\s_-]+")


def load_image(
    obj: Any,
    *,
    timeout: float = 10.0,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    root: str | os.PathLike | None = None,
) -> Image.Image:
    """Load, fully decode and normalize one image to RGB, or raise :class:`SampleError`.

    ``obj`` may be a PIL image, a local path (``str`` or ``Path``; relative ones resolve against ``root``),
    a ``file://``, ``http://`` or ``https://`` URL, a ``data:image/...;base64,`` URI or bare base64 text,
    raw ``bytes``, a ``datasets`` Image dict ``{"bytes": ..., "path": ...}``, or a numpy array or torch tensor
    (HWC or CHW, uint8 or float 0..1; see :func:`~unifilter_hf.image_conversion.array_to_image`).
    URLs are fetched with ``timeout`` seconds for the whole download and at most ``max_bytes`` bytes.
    Images over ``max_pixels`` are refused from their header, before decoding.

    Example:
        >>> from PIL import Image
        >>> load_image(Image.new("RGBA", (2, 2))).getpixel((0, 0))
        (255, 255, 255)
        >>> try:
        ...     load_image(b"not an image")
        ... except SampleError as err:
        ...     print(err.reason)
        image: not a recognized image format
    """
    source = _read_source(obj, timeout=timeout, max_bytes=max_bytes, root=root)
    image = source if isinstance(source, Image.Image) else _open(source)
    _check_size(image, max_pixels)
    _decode(image)
    try:
        image = ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - a malformed EXIF block must not cost a good picture
        pass
    try:
        return to_rgb(image)
    except Exception as err:  # noqa: BLE001 - a rare mode Pillow cannot convert
        raise SampleError(f"image: cannot convert mode {image.mode} to RGB ({short_reason(err)})") from err



def _read_source(obj: Any, *, timeout: float, max_bytes: int, root: str | os.PathLike | None):
    """Return the encoded bytes of ``obj``, or the PIL image itself when it is one already."""
    if isinstance(obj, Image.Image):
        return obj
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return _nonempty(bytes(obj))
    if is_array(obj):  # numpy arrays and torch tensors, HWC or CHW (datasets' numpy / torch formats)
        try:
            return array_to_image(obj)
        except (TypeError, ValueError) as err:
            raise SampleError(f"image: unsupported array {obj.dtype}{list(obj.shape)} ({short_reason(err)})") from err
    if isinstance(obj, Mapping):
        if obj.get("bytes") is not None:
            return _read_source(obj["bytes"], timeout=timeout, max_bytes=max_bytes, root=root)
        if obj.get("path"):
            return _read_source(obj["path"], timeout=timeout, max_bytes=max_bytes, root=root)
        raise SampleError("image: image dict has neither bytes nor path")
    if isinstance(obj, os.PathLike):
        return _read_file(Path(obj), max_bytes=max_bytes, root=root)
    if isinstance(obj, str):
        return _read_string(obj.strip(), timeout=timeout, max_bytes=max_bytes, root=root)
    if obj is None:
        raise SampleError("image: missing (None)")
    raise SampleError(f"image: unsupported type {type(obj).__name__}")


def _read_string(text: str, *, timeout: float, max_bytes: int, root: str | os.PathLike | None) -> bytes:
    lowered = text[:16].lower()
    if lowered.startswith(("http://", "https://")):
        return _fetch(text, timeout=timeout, max_bytes=max_bytes)
    if lowered.startswith("file://"):
        path = urllib.request.url2pathname(urllib.parse.urlparse(text).path)
        return _read_file(Path(path), max_bytes=max_bytes, root=None)
    if lowered.startswith("data:"):
        _, _, payload = text.partition(",")
        return decode_base64(payload)
    if not text:
        raise SampleError("image: empty path")
    path = _resolve(Path(text), root)
    # Bare base64 is only tried when no such file exists: real paths always win.
    if len(text) >= 64 and _BASE64_RE.fullmatch(text) and not _exists(path):
        return decode_base64(text)
    return _read_file(path, max_bytes=max_bytes, root=None)


def _resolve(path: Path, root: str | os.PathLike | None) -> Path:
    path = path.expanduser()
    return Path(root) / path if root is not None and not path.is_absolute() else path


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except (OSError, ValueError):  # name too long for a path, or a NUL byte in it
        return False


def _read_file(path: Path, *, max_bytes: int, root: str | os.PathLike | None) -> bytes:
    path = _resolve(path, root)
    try:
        data = path.read_bytes() if path.stat().st_size <= max_bytes else None
    except FileNotFoundError as err:
        raise SampleError(f"image: file not found: {short_reason(path)}") from err
    except (OSError, ValueError) as err:
        reason = getattr(err, "strerror", None) or err
        raise SampleError(f"image: cannot read file {short_reason(path)} ({short_reason(reason)})") from err
    if data is None:
        raise SampleError(f"image: file larger than max_bytes={max_bytes}: {short_reason(path)}")
    return _nonempty(data)


def decode_base64(payload: str) -> bytes:
    compact = "".join(payload.split())
    compact += "=" * (-len(compact) % 4)  # unpadded base64 is common in JSON exports
    altchars = b"-_" if "-" in compact or "_" in compact else None
    try:
        data = base64.b64decode(compact, altchars=altchars, validate=True)
    except (binascii.Error, ValueError) as err:
        raise SampleError("image: invalid base64 data") from err
    return _nonempty(data)


def _fetch(url: str, *, timeout: float, max_bytes: int) -> bytes:
    """Download ``url`` within ``timeout`` seconds in total (not per read: a trickling server is cut off)."""
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    received = 0
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            while chunk := response.read1(1 << 16):
                received += len(chunk)
                if received > max_bytes:
                    raise SampleError(f"image: URL response larger than max_bytes={max_bytes}")
                if time.monotonic() > deadline:
                    raise SampleError(f"image: URL fetch timed out after {timeout:g}s")
                chunks.append(chunk)
    except SampleError:
        raise
    except urllib.error.HTTPError as err:
        raise SampleError(f"image: URL fetch failed (HTTP {err.code})") from err
    except TimeoutError as err:
        raise SampleError(f"image: URL fetch timed out after {timeout:g}s") from err
    except urllib.error.URLError as err:
        if isinstance(err.reason, TimeoutError):
            raise SampleError(f"image: URL fetch timed out after {timeout:g}s") from err
        raise SampleError(f"image: URL unreachable ({short_reason(err.reason)})") from err
    except (OSError, http.client.HTTPException, ValueError) as err:
        raise SampleError(f"image: URL unreachable ({short_reason(err)})") from err
    return _nonempty(b"".join(chunks))


def _nonempty(data: bytes) -> bytes:
    if not data:
        raise SampleError("image: empty file (0 bytes)")
    return data


def _open(data: bytes) -> Image.Image:
    try:
        # Our own max_pixels check (next step) is the one that decides; Pillow's warning would only be noise.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as err:
        pixels = re.search(r"\((\d+) pixels\)", str(err))
        raise SampleError(f"image: decompression bomb ({pixels.group(1) if pixels else '?'} px)") from err
    except UnidentifiedImageError as err:
        raise SampleError("image: not a recognized image format") from err
    except Exception as err:  # noqa: BLE001 - header parsers raise anything (SyntaxError, struct.error, ...)
        raise SampleError(f"image: cannot read header ({short_reason(err)})") from err


def _check_size(image: Image.Image, max_pixels: int) -> None:
    width, height = image.size
    if width <= 0 or height <= 0:
        raise SampleError(f"image: empty image ({width}x{height})")
    if width * height > max_pixels:
        pixels = width * height
        raise SampleError(f"image: decompression bomb ({width}x{height} = {pixels} px > {max_pixels})")


def _decode(image: Image.Image) -> None:
    """Decode every pixel now, so that a truncated or corrupt file fails here and not inside a batch."""
    try:
        image.load()
    except Exception as err:  # noqa: BLE001 - decoders raise OSError, SyntaxError, ValueError, EOFError, ...
        if "truncated" in str(err).lower():
            raise SampleError("image: truncated file") from err
        raise SampleError(f"image: cannot decode ({short_reason(err)})") from err


def short_reason(value: object) -> str:
    text = str(value) or type(value).__name__
    return text if len(text) <= _REASON_CHARS else text[: _REASON_CHARS - 3] + "..."

