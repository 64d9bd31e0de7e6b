"""Reusable bad and good input rows built from real photographs, each with its expected outcome.

Every case is a :class:`RowCase`: ``kind`` (a stable name), ``row`` (a plain dict as it would come from a Hub
dataset, a webdataset shard or a user), ``expect`` (``"error"``: the row scores NaN with a reason;
``"ok"``: the row is valid after the documented handling) and ``reason`` (a substring of the error reason,
or for ``"ok"`` rows a substring expected in ``sample.meta["dropped"]``; empty when nothing is dropped).

Caption rows hold images as ``datasets`` Image dicts ``{"bytes": ..., "path": ...}`` so that any subset of
them with string texts fits one Arrow schema; every row with ``arrow=True`` alone makes a one-row
``datasets.Dataset`` (rows of one ``schema`` may still differ in column types, e.g. an int caption).

Example:
    >>> cases = bad_rows(tmp_path)                       # doctest: +SKIP
    >>> [c.kind for c in cases if c.expect == "error"][:2]  # doctest: +SKIP
    ['caption_corrupt_bytes', 'caption_truncated_jpeg']
"""

from __future__ import annotations

import base64
import io
import socket
import struct
import zlib
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
from PIL import Image

from tests.kit import photo

SIZE = 96  # pixels on the longer side: real content, fast decoding


class RowCase(NamedTuple):
    kind: str
    row: dict[str, Any]
    expect: Literal["ok", "error"]
    reason: str = ""
    schema: str = "caption"  # "caption", "document", "mmc4" or "none" (no schema matches)
    arrow: bool = True  # False: the row cannot be stored in Arrow (it only comes from Python callers)


# ------------------------------------------------------------------------------------------- encoders


def encode(image: Image.Image, fmt: str = "PNG", **save_kwargs: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save_kwargs)
    return buffer.getvalue()


def image_dict(data: bytes | None = None, path: str | None = None) -> dict[str, Any]:
    """A ``datasets`` Image dict, the form images take in Hub parquet files."""
    return {"bytes": data, "path": path}


def jpeg(name: str, size: int = SIZE) -> bytes:
    return encode(photo(name, size).convert("RGB"), "JPEG", quality=90)


def png(name: str, size: int = SIZE) -> bytes:
    return encode(photo(name, size), "PNG")


def truncated_jpeg(name: str = "chelsea") -> bytes:
    data = jpeg(name)
    return data[: len(data) // 2]


def corrupt_bytes(name: str = "coffee") -> bytes:
    """A real JPEG whose header is overwritten: no decoder recognizes it."""
    data = jpeg(name)
    return b"\x13\x37" * 32 + data[64:]


def cmyk_jpeg(name: str = "coffee") -> bytes:
    return encode(photo(name, SIZE).convert("CMYK"), "JPEG", quality=95)


def rgba_png(name: str = "astronaut") -> bytes:
    """The left half fully transparent, the right half opaque."""
    image = photo(name, SIZE).convert("RGBA")
    alpha = np.full((image.height, image.width), 255, np.uint8)
    alpha[:, : image.width // 2] = 0
    image.putalpha(Image.fromarray(alpha))
    return encode(image)


def palette_png_with_transparency(name: str = "chelsea") -> bytes:
    """A 63-color palette photo plus a 64th (green) entry, transparent, used by its top-left 8x8 block."""
    image = photo(name, SIZE).quantize(63)
    pixels = np.asarray(image).copy()
    pixels[:8, :8] = 63
    paletted = Image.fromarray(pixels)  # "L"; putpalette turns it into "P"
    paletted.putpalette(image.getpalette()[: 63 * 3] + [0, 255, 0])
    return encode(paletted, transparency=63)


def gray16_png(name: str = "camera") -> bytes:
    """A 16-bit grayscale PNG (8-bit values times 257, the full 0..65535 range)."""
    values = np.asarray(photo(name, SIZE), dtype=np.uint16) * 257
    return encode(Image.fromarray(values))


def exif_rotated_jpeg(name: str = "rocket") -> bytes:
    """A landscape photo stored with EXIF orientation 6 (display rotated 90 degrees clockwise)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(photo(name, SIZE).convert("RGB"), "JPEG", exif=exif.tobytes())


def bomb_png(name: str = "coins", width: int = 30_000, height: int = 30_000) -> bytes:
    """A real photo PNG whose header claims ``width`` x ``height``: a decompression bomb, a few KB on disk."""
    data = bytearray(png(name))
    ihdr = 8  # after the PNG signature: length (4), type (4), data (13), crc (4)
    body = struct.pack(">II", width, height) + bytes(data[ihdr + 16 : ihdr + 21])
    data[ihdr + 8 : ihdr + 21] = body
    data[ihdr + 21 : ihdr + 25] = struct.pack(">I", zlib.crc32(b"IHDR" + body))
    return bytes(data)


def one_pixel(name: str = "rocket", size: tuple[int, int] = (1, 1)) -> bytes:
    return encode(photo(name).convert("RGB").resize(size), "PNG")


def closed_port_url(path: str = "x.jpg") -> str:
    """A URL on 127.0.0.1 where nothing listens (connection refused at once, no internet involved)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/{path}"


# ------------------------------------------------------------------------------------------- rows


def _caption(image: Any, text: Any = "A photograph.") -> dict[str, Any]:
    return {"image": image, "text": text}


def _doc(*slots: Any) -> dict[str, Any]:
    """Slots: a str is a text slot, anything else an image slot."""
    texts = [s if isinstance(s, str) else None for s in slots]
    images = [None if isinstance(s, str) else s for s in slots]
    return {"texts": texts, "images": images}


def bad_rows(tmp_path: Path) -> list[RowCase]:
    """At least 15 kinds of bad rows (caption, OBELICS document and mmc4), with their expected outcome."""
    tmp_path = Path(tmp_path)
    empty_file = tmp_path / "empty.jpg"
    empty_file.write_bytes(b"")
    missing = str(tmp_path / "does-not-exist.jpg")
    unreachable = closed_port_url()
    good = image_dict(jpeg("astronaut"))
    doc = "document"
    return [
        # captions: unusable image or text -> error
        RowCase("caption_corrupt_bytes", _caption(image_dict(corrupt_bytes())), "error", "not a recognized"),
        RowCase("caption_truncated_jpeg", _caption(image_dict(truncated_jpeg())), "error", "truncated file"),
        RowCase("caption_missing_path", _caption(image_dict(path=missing)), "error", "file not found"),
        RowCase("caption_empty_file", _caption(image_dict(path=str(empty_file))), "error", "empty file"),
        RowCase(
            "caption_unreachable_url", _caption(image_dict(path=unreachable)), "error", "URL unreachable"
        ),
        RowCase("caption_one_pixel", _caption(image_dict(one_pixel())), "error", "1-pixel image"),
        RowCase("caption_one_pixel_wide", _caption(image_dict(one_pixel(size=(1, 64)))), "error", "1-pixel"),
        RowCase(
            "caption_decompression_bomb", _caption(image_dict(bomb_png())), "error", "decompression bomb"
        ),
        RowCase("caption_no_image", _caption(None), "error", "image: missing"),
        RowCase("caption_empty_text", _caption(good, ""), "error", "caption: empty text"),
        RowCase("caption_whitespace_text", _caption(good, " \n\t "), "error", "caption: empty text"),
        RowCase("caption_none_text", _caption(good, None), "error", "caption: missing text"),
        RowCase("caption_non_string_text", _caption(good, 42), "error", "must be a string"),
        RowCase(
            "wrong_columns", {"picture": good, "description": "A cat."}, "error", "no known schema", "none"
        ),
        # captions: unusual but valid images -> converted
        RowCase("caption_cmyk_jpeg", _caption(image_dict(cmyk_jpeg()), "A cup of coffee."), "ok"),
        RowCase("caption_rgba_png", _caption(image_dict(rgba_png()), "An astronaut."), "ok"),
        RowCase("caption_palette_transparency", _caption(image_dict(palette_png_with_transparency())), "ok"),
        RowCase("caption_gray16_png", _caption(image_dict(gray16_png()), "A cameraman."), "ok"),
        RowCase("caption_exif_rotated", _caption(image_dict(exif_rotated_jpeg()), "A rocket."), "ok"),
        # documents: unusable image slots are dropped and recorded; error only when nothing is left
        RowCase("doc_one_pixel_image", _doc("Intro.", good, image_dict(one_pixel())), "ok", "1-pixel", doc),
        RowCase(
            "doc_truncated_image", _doc("Intro.", image_dict(truncated_jpeg()), good), "ok", "truncated", doc
        ),
        RowCase(  # OBELICS on the Hub stores images as bare URL strings
            "doc_unreachable_url",
            {"texts": ["Intro.", None], "images": [None, unreachable]},
            "error",
            "document: all images failed to load (image 1: URL unreachable",
            doc,
        ),
        RowCase("doc_no_image", _doc("Only text here.", "And more."), "ok", "", doc),
        RowCase("doc_no_text", _doc(good, image_dict(jpeg("chelsea"))), "ok", "", doc),
        RowCase(
            "doc_all_images_broken",
            _doc(image_dict(corrupt_bytes()), image_dict(path=missing)),
            "error",
            "no usable image (image 0: not a recognized image format; image 1: file not found",
            doc,
        ),
        RowCase("doc_empty", {"texts": [], "images": []}, "error", "no text and no usable image", doc),
        RowCase("doc_blank_text_only", _doc("   ", "\n"), "error", "no text and no usable image", doc),
        RowCase(
            "doc_non_string_text",
            {"texts": ["Intro.", 7], "images": [None, None]},
            "error",
            "text 1: must be a string",
            doc,
            arrow=False,
        ),
        RowCase(
            "doc_length_mismatch", {"texts": ["a", None], "images": [None]}, "error", "differ in length", doc
        ),
        RowCase(
            "doc_slot_with_both", {"texts": ["a"], "images": [good]}, "error", "both a text and an image", doc
        ),
        RowCase(
            "doc_texts_not_list", {"texts": "just a string", "images": []}, "error", "must be a list", doc
        ),
        # mmc4: entries without a usable image are dropped and recorded
        RowCase(
            "mmc4_bad_matched_index", _mmc4([("A sentence.", None)], index=5), "error",
            "document: all images failed to load (image 0: matched_text_index 5 out of range)", "mmc4"
        ),
        RowCase("mmc4_bad_base64", _mmc4([("A sentence.", "!!notbase64")]), "error",
                "document: all images failed to load (image 0: invalid base64", "mmc4"),
    ]


def _mmc4(sentences: list[tuple[str, str | None]], index: int | None = None) -> dict[str, Any]:
    """An mmc4 row: one image (base64 ``payload``, or a real photo when None) matched to each sentence."""
    infos = []
    for i, (_, payload) in enumerate(sentences):
        data = payload if payload is not None else base64.b64encode(jpeg("flower")).decode()
        infos.append(
            {
                "image_name": f"img{i}.jpg",
                "raw_url": f"https://example.invalid/img{i}.jpg",
                "matched_text_index": i if index is None else index,
                "matched_sim": 0.3,
                "image_base64": data,
            }
        )
    return {
        "text_list": [s for s, _ in sentences],
        "image_info": infos,
        "url": "https://example.invalid/page",
    }


def good_rows(tmp_path: Path) -> list[RowCase]:
    """Valid captions, OBELICS documents and mmc4 documents in the forms they arrive in (all ``"ok"``)."""
    tmp_path = Path(tmp_path)
    cat_path = tmp_path / "chelsea.jpg"
    cat_path.write_bytes(jpeg("chelsea"))
    rocket_path = tmp_path / "rocket.png"
    rocket_path.write_bytes(png("rocket"))
    flower_b64 = base64.b64encode(jpeg("flower")).decode()
    doc = "document"
    return [
        RowCase(
            "caption_pil", {"image": photo("astronaut", SIZE), "text": "An astronaut in a spacesuit."}, "ok"
        ),
        RowCase(
            "caption_image_dict", {"image": image_dict(jpeg("coffee")), "caption": "A cup of coffee."}, "ok"
        ),
        RowCase("caption_local_path", {"image": str(cat_path), "text": "A tabby cat."}, "ok"),
        RowCase(
            "caption_gray_photo", {"image": image_dict(png("moon")), "text": "The surface of the moon."}, "ok"
        ),
        RowCase(
            "webdataset_jpg_txt",
            {
                "__key__": "000001",
                "jpg": jpeg("china"),
                "txt": "A temple in China.",
                "json": {"key": "000001"},
            },
            "ok",
        ),
        RowCase(
            "webdataset_png_json_caption",
            {"__key__": "000002", "png": png("flower"), "json": {"caption": "A pink flower.", "width": SIZE}},
            "ok",
        ),
        RowCase(
            "obelics_image_dicts",
            _doc(
                "A day at the space center.",
                image_dict(jpeg("rocket")),
                "The launch.",
                image_dict(png("coins")),
            ),
            "ok",
            "",
            doc,
        ),
        RowCase(
            "obelics_paths_and_file_url",
            {
                "texts": [None, "Our cat and a rocket.", None],
                "images": [str(cat_path), None, rocket_path.as_uri()],
            },
            "ok",
            "",
            doc,
        ),
        RowCase(
            "mmc4_base64",
            {
                "text_list": ["Spring is here.", "The garden is in bloom."],
                "image_info": [{"image_name": "f.jpg", "matched_text_index": 1, "image_base64": flower_b64}],
            },
            "ok",
            "",
            "mmc4",
        ),
    ]
