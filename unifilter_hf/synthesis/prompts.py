"""Prompt templates for the model-backed generators (our own wording of the paper's four requirements).

Messages use a neutral chat layout, ``[{"role": ..., "content": [parts]}]`` with parts
``{"type": "text", "text": ...}`` and ``{"type": "image", "image": <image source>}``; the HTTP backend turns
image parts into ``image_url`` data URIs, the transformers backend hands them to the processor.

The model must answer with one JSON object, ``{"0": ..., "1": ..., "2": ..., "3": ...}``. Document texts
place images with markers ``<image1>``, ``<image2>``, ... (1-based, each at most once); see
:mod:`.parsing`. Changing any template text means bumping :data:`PROMPT_VERSION` (it is in every record's
provenance and in the request cache key).

Example:
    >>> from PIL import Image
    >>> from unifilter_hf.synthesis import SourceItem
    >>> item = SourceItem("x", "caption", [Image.new("RGB", (4, 4))], reference="a black square")
    >>> [m["role"] for m in build_messages(item, "rewrite")]
    ['system', 'user']
"""

from __future__ import annotations

from typing import Any

from .levels import LEVEL_NAMES, requirement
from .source_item import SourceItem

PROMPT_VERSION = "uf-synth-v1"

SYSTEM_PROMPT = (
    "You create training data for a classifier that rates the quality of image-text data. For each source "
    "you write the same content at four quality levels, following the level definitions exactly. You answer "
    "with a single JSON object and nothing else."
)

_JSON_CAPTION = (
    'Answer with only this JSON object: {"0": "<level 0 caption>", "1": "<level 1 caption>", '
    '"2": "<level 2 caption>", "3": "<level 3 caption>"}. No markdown, no comments.'
)
_JSON_DOCUMENT = (
    'Answer with only this JSON object: {"0": "<level 0 document>", "1": "<level 1 document>", '
    '"2": "<level 2 document>", "3": "<level 3 document>"}. Each document is plain text with paragraphs '
    "separated by blank lines. Place an image by writing its marker ({markers}) between paragraphs; use each "
    "marker at most once and at least one marker per document. No markdown, no comments."
)


def image_marker(index: int) -> str:
    """The marker for the 0-based image ``index`` (``0`` -> ``"<image1>"``)."""
    return f"<image{index + 1}>"


def render_document(slots: list[str | int]) -> str:
    """Slots (``str`` text, ``int`` image index) as text with image markers, paragraphs split by blank lines."""
    return "\n\n".join(image_marker(s) if isinstance(s, int) else s.strip() for s in slots)


def _levels_block(kind: str) -> str:
    return "\n".join(f"- Level {lvl} ({LEVEL_NAMES[lvl]}): {requirement(lvl, kind)}" for lvl in range(4))


def build_messages(item: SourceItem, mode: str) -> list[dict[str, Any]]:
    """The chat messages asking for all four levels of ``item``.

    ``mode="vision"`` shows the images (a reference, if any, is offered as a hint); ``mode="rewrite"``
    sends text only and requires ``item.reference``.
    """
    if mode == "rewrite" and item.reference is None:
        raise ValueError(f"{item.id}: rewrite mode needs a reference caption or document")
    parts: list[dict[str, Any]] = []
    if item.kind == "caption":
        if mode == "vision":
            parts.append({"type": "image", "image": item.images[0]})
            intro = "Write four captions for the image above, one per quality level."
            if item.reference:
                intro += f"\nAn existing caption of this image, for reference (it may be incomplete):\n{item.reference}"
        else:
            intro = (
                "Below is an accurate, detailed caption of a photograph you cannot see. Write four captions of "
                "that photograph, one per quality level, treating the reference as the truth about the image; "
                "level 3 keeps every fact of the reference.\nReference caption:\n"
                f"{item.reference}"
            )
        tail = _JSON_CAPTION
    else:
        markers = ", ".join(image_marker(i) for i in range(item.num_images))
        if mode == "vision":
            intro = f"Here are {item.num_images} images from one web document, in order."
            for i, src in enumerate(item.images):
                parts.append({"type": "text", "text": f"{image_marker(i)}:"})
                parts.append({"type": "image", "image": src})
            intro += " Write four interleaved documents that use these images, one per quality level."
        else:
            intro = (
                f"Below is a high-quality document with {item.num_images} images shown as markers. Write four "
                "versions of it, one per quality level; level 3 keeps every fact of the reference."
            )
        slots = item.reference_slots()
        if slots is not None:
            intro += f"\nReference document:\n{render_document(slots)}"
        tail = _JSON_DOCUMENT.replace("{markers}", markers)
    text = f"{intro}\n\nQuality levels:\n{_levels_block(item.kind)}\n\n{tail}"
    parts.append({"type": "text", "text": text})
    return [
        {"role": "system", "content": [{"type": "text", "text": SYSTEM_PROMPT}]},
        {"role": "user", "content": parts},
    ]
