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
import io
import os
import re
import urllib.parse
import urllib.request
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageOps, UnidentifiedImageError

from .image_conversion import array_to_image, decoded_bytes_per_pixel, is_array, to_rgb
from .local_files import read_local, resolve_local
from .safe_fetch import fetch_url
from .sample import SampleError

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_DECODED_BYTES",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MAX_SIDE",
    "decode_base64",
    "load_image",
]

# Below Pillow's own warning threshold (89.5M), so our limit is the one users meet; any real photo fits.
DEFAULT_MAX_PIXELS = 64 * 1024 * 1024
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
# Memory for decoding and converting one image (its buffer plus the RGB copy): an 8-bit RGB photo at
# max_pixels fits; a float or 16-bit image of the same size, which costs 2-3 times more, does not.
DEFAULT_MAX_DECODED_BYTES = 256 * 1024 * 1024
# Loaded images are shrunk to this longer side at once: the model sees 384x384, and a document's images are
# held until its batch runs (ten 8192x8192 slots would hold 2.7 GB).
DEFAULT_MAX_SIDE = 2048

_REASON_CHARS = 160
_BASE64_RE = re.compile(r"[A-Za-z0-9+/=\s_-]+")


def load_image(
    obj: Any,
    *,
    timeout: float = 10.0,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    root: str | os.PathLike | None = None,
    allow_local_files: bool | str | Iterable[str | os.PathLike] | None = None,
    allow_private_urls: bool | str | Iterable[str] | None = None,
    max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES,
    max_side: int | None = DEFAULT_MAX_SIDE,
    fetch_urls: bool = True,
) -> Image.Image:
    """Load, fully decode and normalize one image to RGB, or raise :class:`SampleError`.

    ``obj`` may be a PIL image, a local path (``str`` or ``Path``), a ``file://``, ``http://`` or ``https://``
    URL, a ``data:image/...;base64,`` URI or bare base64 text, raw ``bytes``, a ``datasets`` Image dict
    ``{"bytes": ..., "path": ...}``, or a numpy array or torch tensor (HWC or CHW, uint8 or float 0..1; see
    :func:`~unifilter_hf.image_conversion.array_to_image`).

    Trust (docs/security.md): ``root=None`` means ``obj`` is the caller's own argument and a local path is
    read as given. Pass ``root`` (the data file's folder) whenever ``obj`` comes from a data row: a path then
    resolves against ``root`` and is read only inside it (absolute paths elsewhere, ``~``, ``..`` escapes and
    ``file://`` are refused) unless ``allow_local_files`` (``True`` or a list of folders) allows more. URLs
    are fetched by :mod:`.safe_fetch`: http(s) only, public addresses only unless ``allow_private_urls``
    (``True`` or networks such as ``"127.0.0.0/8"``), ``timeout`` seconds in total, at most ``max_bytes``.
    Both opt-ins default to the environment (``UNIFILTER_ALLOW_LOCAL_FILES``, ``UNIFILTER_ALLOW_PRIVATE_URLS``).
    Only regular files are read, at most ``max_bytes`` bytes. ``fetch_urls=False`` refuses URLs ("not fetched
    again": the report shows what was scored, it does not fetch a second time).

    Budgets: images over ``max_pixels``, or whose decoded buffer (bit depth and channels counted) would exceed
    ``max_decoded_bytes``, are refused from their header, before decoding. A loaded image larger than
    ``max_side`` on its longer side is shrunk at once (the model sees 384 pixels; this only bounds memory).

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
    access = _Access(timeout, max_bytes, root, allow_local_files, allow_private_urls, fetch_urls)
    source = _read_source(obj, access)
    image = source if isinstance(source, Image.Image) else _open(source)
    _check_size(image, max_pixels, max_decoded_bytes)
    _decode(image)
    try:
        image = ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - a malformed EXIF block must not cost a good picture
        pass
    try:
        image = to_rgb(image)
    except Exception as err:  # noqa: BLE001 - a rare mode Pillow cannot convert
        raise SampleError(f"image: cannot convert mode {image.mode} to RGB ({short_reason(err)})") from err
    return _shrink(image, max_side) if max_side and max(image.size) > max_side else image


def _shrink(image: Image.Image, max_side: int) -> Image.Image:
    scale = max_side / max(image.size)
    # A side of 2 or more stays 2 or more: 1-pixel images are dropped by design, shrinking must not make one.
    size = tuple(max(min(2, side), round(side * scale)) for side in image.size)
    return image.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0)


@dataclass(frozen=True)
class _Access:
    """Where one load may read from (see :func:`load_image`)."""

    timeout: float
    max_bytes: int
    root: str | os.PathLike | None
    allow_local_files: Any
    allow_private_urls: Any
    fetch_urls: bool = True


def _read_source(obj: Any, access: _Access):
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
            return _read_source(obj["bytes"], access)
        if obj.get("path"):
            return _read_source(obj["path"], access)
        raise SampleError("image: image dict has neither bytes nor path")
    if isinstance(obj, os.PathLike):
        return _read_file(obj, access)
    if isinstance(obj, str):
        return _read_string(obj.strip(), access)
    if obj is None:
        raise SampleError("image: missing (None)")
    raise SampleError(f"image: unsupported type {type(obj).__name__}")


def _read_string(text: str, access: _Access) -> bytes:
    lowered = text[:16].lower()
    if lowered.startswith(("http://", "https://")):
        if not access.fetch_urls:
            raise SampleError("image: URL not fetched again (each URL is fetched once, when the job scores it)")
        return fetch_url(
            text, timeout=access.timeout, max_bytes=access.max_bytes, allow_private_urls=access.allow_private_urls
        )
    if lowered.startswith("file:"):
        parsed = urllib.parse.urlparse(text)
        if parsed.netloc not in ("", "localhost"):
            raise SampleError("image: bad URL (file:// on another host)")
        return _read_file(urllib.request.url2pathname(parsed.path), access)
    if lowered.startswith("data:"):
        _, _, payload = text.partition(",")
        return decode_base64(payload)
    if re.match(r"[a-z][a-z0-9+.-]*://", lowered):
        raise SampleError(f"image: bad URL (scheme {lowered.split(':', 1)[0][:10]!r} refused; only http and https)")
    if not text:
        raise SampleError("image: empty path")
    # Bare base64 is only tried when no such file may be read: real paths always win. A path that policy
    # refuses is never looked at, so the answer cannot tell whether it exists.
    if len(text) >= 64 and _BASE64_RE.fullmatch(text) and not _readable_file(text, access):
        return decode_base64(text)
    return _read_file(text, access)


def _readable_file(text: str, access: _Access) -> bool:
    try:
        return resolve_local(text, root=access.root, allow_local_files=access.allow_local_files).exists()
    except (SampleError, OSError, ValueError):  # refused, name too long for a path, ...
        return False


def _read_file(path: str | os.PathLike, access: _Access) -> bytes:
    return read_local(
        path, root=access.root, max_bytes=access.max_bytes, allow_local_files=access.allow_local_files
    )


def decode_base64(payload: str) -> bytes:
    compact = "".join(payload.split())
    compact += "=" * (-len(compact) % 4)  # unpadded base64 is common in JSON exports
    altchars = b"-_" if "-" in compact or "_" in compact else None
    try:
        data = base64.b64decode(compact, altchars=altchars, validate=True)
    except (binascii.Error, ValueError) as err:
        raise SampleError("image: invalid base64 data") from err
    return _nonempty(data)


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


def _check_size(image: Image.Image, max_pixels: int, max_decoded_bytes: int) -> None:
    width, height = image.size
    if width <= 0 or height <= 0:
        raise SampleError(f"image: empty image ({width}x{height})")
    pixels = width * height
    if pixels > max_pixels:
        raise SampleError(f"image: decompression bomb ({width}x{height} = {pixels} px > {max_pixels})")
    needed = pixels * decoded_bytes_per_pixel(image.mode)
    if needed > max_decoded_bytes:
        raise SampleError(
            f"image: decompression bomb ({width}x{height} {image.mode} needs {needed // 2**20} MiB to decode "
            f"> max_decoded_bytes={max_decoded_bytes // 2**20} MiB)"
        )


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

