"""A document row's slots, in reading order, and the document they assemble to (images loaded, bad ones dropped).

:mod:`~unifilter_hf.row_layouts` reads the row's layout; this module holds what the OBELICS and mmc4 layouts
share once their columns are found: the slot lists, the image-error policy and the dropped-image reasons.

Example:
    >>> from PIL import Image
    >>> slots = obelics_slots(["Intro.", None], [None, Image.new("RGB", (8, 8))])
    >>> [s[0] for s in slots]
    ['text', 'image']
    >>> assemble_document(slots, [], load=lambda image: image, max_images=None, on_image_error="fail").num_images
    1
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, Literal

import numpy as np
from PIL import Image

from .image_loading import decode_base64, short_reason
from .sample import Sample, SampleError

# What a document gets when some of its images fail to load (see docs/input_handling.md):
# "score_rest" scores what is left (even text only), "fail_if_all" fails the row when none of its images
# loaded, "fail" fails the row when any image failed.
ImageErrorPolicy = Literal["score_rest", "fail_if_all", "fail"]
IMAGE_ERROR_POLICIES: tuple[str, ...] = ("score_rest", "fail_if_all", "fail")
# Drops that are by design, not failures: tracking pixels and the max_images cap.
_DESIGNED_DROPS = (": 1-pixel image", ": over max_images=")

# A slot is ("text", str) or ("image", label, source) where label names it in reasons ("image 3").
_Slot = tuple


def unicode_text(text: str, label: str) -> str:
    """``text`` if it can be written as UTF-8; a lone surrogate (JSON ``"\\ud800"``) would fail the tokenizer
    or the output writer later, for the whole batch, so it is this row's error now."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise SampleError(f"{label}: text is not valid Unicode (lone surrogate)") from None
    return text


def as_list(value: Any, what: str) -> list:
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, np.ndarray):
        return value.tolist() if value.dtype != object else list(value)
    if value is None:
        raise SampleError(f"document: {what} is missing (None)")
    raise SampleError(f"document: {what} must be a list, got {type(value).__name__}")



def obelics_slots(texts: Any, images: Any) -> list[_Slot]:
    texts, images = as_list(texts, "texts"), as_list(images, "images")
    if len(texts) != len(images):
        raise SampleError(f"document: texts and images differ in length ({len(texts)} vs {len(images)})")
    slots: list[_Slot] = []
    for i, (text, image) in enumerate(zip(texts, images)):
        if text is not None and image is not None:
            raise SampleError(f"slot {i}: holds both a text and an image")
        if text is not None:
            slots.append(("text", _slot_text(text, f"text {i}")))
        elif image is not None:
            slots.append(("image", f"image {i}", image))
    return slots


def _slot_text(text: Any, label: str) -> str:
    if not isinstance(text, str):
        raise SampleError(f"{label}: must be a string, got {type(text).__name__}")
    return unicode_text(text, label)


def mmc4_slots(text_list: Any, image_info: Any, has_root: bool | str | None) -> tuple[list[_Slot], list[str]]:
    sentences = [_slot_text(s, f"text {i}") for i, s in enumerate(as_list(text_list, "text_list"))]
    before: dict[int, list[_Slot]] = {}
    dropped: list[str] = []
    for k, info in enumerate(as_list(image_info, "image_info")):
        label = f"image {k}"
        if not isinstance(info, Mapping):
            dropped.append(f"{label}: image_info entry is not a dict")
            continue
        index = info.get("matched_text_index")
        if not isinstance(index, (int, np.integer)) or not 0 <= index < len(sentences):
            dropped.append(f"{label}: matched_text_index {index!r} out of range")
            continue
        try:
            source = _mmc4_source(info, has_root)
        except SampleError as err:
            dropped.append(_relabel(err.reason, label))
            continue
        before.setdefault(int(index), []).append(("image", label, source))
    slots: list[_Slot] = []
    for i, sentence in enumerate(sentences):
        slots.extend(before.get(i, []))
        slots.append(("text", sentence))
    return slots, dropped


def _mmc4_source(info: Mapping[str, Any], has_root: bool | str | None) -> Any:
    """The best image source of an mmc4 ``image_info`` entry: embedded data, then local file (under an explicit
    image root, or present in the data file's folder ``has_root``), then URL."""
    if info.get("image_base64"):
        return decode_base64(info["image_base64"])
    for key in ("image_bytes", "bytes", "image"):
        if info.get(key) is not None:
            return info[key]
    name = info.get("image_name")
    if name and (has_root is True or (has_root and os.path.isfile(os.path.join(has_root, str(name))))):
        return name
    if info.get("raw_url"):
        return info["raw_url"]
    raise SampleError("image: no image data (image_base64, image_bytes, image, image_name or raw_url)")


def assemble_document(
    slots: list[_Slot],
    dropped: list[str],
    load: Callable[..., Image.Image],
    max_images: int | None,
    on_image_error: ImageErrorPolicy,
) -> Sample:
    """Load a document's images in reading order; drop unusable ones with their slot and record why."""
    texts: list[str | None] = []
    images: list[Image.Image | None] = []
    kept = 0
    for slot in slots:
        if slot[0] == "text":
            texts.append(slot[1])
            images.append(None)
            continue
        _, label, source = slot
        if max_images is not None and kept >= max_images:
            dropped.append(f"{label}: over max_images={max_images}")
            continue
        try:
            image = load(source)
        except SampleError as err:
            dropped.append(_relabel(err.reason, label))
            continue
        if min(image.size) == 1:
            dropped.append(f"{label}: 1-pixel image ({image.width}x{image.height})")
            continue
        texts.append(None)
        images.append(image)
        kept += 1
    dropped = sorted(dropped, key=_image_index)
    if not kept and not any(t and t.strip() for t in texts):
        detail = f" ({'; '.join(dropped)})" if dropped else ""
        raise SampleError(short_reason(f"document: no text and no usable image{detail}"))
    failed = [reason for reason in dropped if not any(mark in reason for mark in _DESIGNED_DROPS)]
    if failed and (on_image_error == "fail" or (on_image_error == "fail_if_all" and not kept)):
        which = "all" if not kept else f"{len(failed)} of {len(failed) + kept}"
        raise SampleError(short_reason(f"document: {which} images failed to load ({'; '.join(failed)})"))
    sample = Sample.document(texts, images)
    sample.meta["dropped"] = dropped
    return sample


def _image_index(reason: str) -> int:
    """The ``N`` of ``"image N: ..."``, so that dropped entries list in source order."""
    return int(reason.split(":", 1)[0].removeprefix("image "))


def _relabel(reason: str, label: str) -> str:
    """``"image: truncated file"`` -> ``"image 2: truncated file"``."""
    return label + reason[len("image") :] if reason.startswith("image:") else f"{label}: {reason}"

