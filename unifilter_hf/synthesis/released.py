"""Read the released ``weizhiwang/unifilter_train_data`` layout as synthetic records.

The release is a JSON file, or a folder of JSON/JSONL files, holding lists of
``{"image": path | [paths], "text": "... <image> ...", "label": int}`` with image paths relative to an
image folder. A string ``image`` is a caption (its ``<image>`` placeholder is dropped); a list is a
document whose placeholders become image slots. The release has no group ids: captions are grouped by
their image, documents by their image set, and every image of a record counts as a source image.

Example:
    >>> text_to_slots("Intro. <image> End. <image>", 2)
    ['Intro.', 0, 'End.', 1]
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from ..levels import LEVEL_NAMES, level_of
from .records import Provenance, SynthRecord, slots_to_lists

logger = logging.getLogger(__name__)

RELEASED_GENERATOR = "unifilter-release"
PLACEHOLDER = "<image>"


def released_files(path: Path) -> list[Path]:
    """The JSON/JSONL files of a released-layout path (the file itself, or a folder's files, sorted)."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.iterdir() if p.suffix in (".json", ".jsonl") and p.is_file())


def _read_json_records(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    data = json.loads(text)
    return data if isinstance(data, list) else []


def _label(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return level_of(float(value))
    if isinstance(value, str):
        if value in LEVEL_NAMES:
            return LEVEL_NAMES.index(value)
        if value.strip().isdigit():
            return _label(int(value))
    return None


def text_to_slots(text: str, n_images: int) -> list[str | int] | None:
    """``"a <image> b <image>"`` -> ``["a", 0, "b", 1]``; ``None`` if placeholders and images disagree."""
    chunks = text.split(PLACEHOLDER)
    if len(chunks) - 1 != n_images:
        return None
    slots: list[str | int] = []
    for k, chunk in enumerate(chunks):
        chunk = chunk.strip()
        if chunk:
            slots.append(chunk)
        if k < n_images:
            slots.append(k)
    return slots


def released_records(path: Path, image_folder: Path) -> list[SynthRecord]:
    """Every usable record of the release at ``path`` (malformed ones are skipped with one warning)."""
    records, skipped = [], 0
    for file in released_files(path):
        for idx, raw in enumerate(_read_json_records(file)):
            rec = _record(raw, file, idx, image_folder)
            if rec is None:
                skipped += 1
            else:
                records.append(rec)
    if skipped:
        logger.warning("released layout: skipped %d records (no label/image/text, or placeholders != images)",
                       skipped)
    return records


def _record(raw: dict[str, Any], file: Path, idx: int, image_folder: Path) -> SynthRecord | None:
    level = _label(raw.get("label"))
    image, text = raw.get("image"), raw.get("text")
    if level is None or not image or not isinstance(text, str):
        return None
    rid = f"{file.stem}/{idx}"
    paths = [image] if isinstance(image, str) else [str(p) for p in image]
    prov = Provenance(RELEASED_GENERATOR, source=file.name, extra={"file": file.name, "index": idx,
                                                                   "image_ids": paths})
    if isinstance(image, str):
        caption = " ".join(text.replace(PLACEHOLDER, " ").split())
        if not caption:
            return None
        return SynthRecord.caption(rid, f"released/{image}", level, str(image_folder / image), caption, prov)
    slots = text_to_slots(text, len(paths))
    if slots is None or not paths:
        return None
    group = "released/" + hashlib.sha1("\n".join(sorted(paths)).encode()).hexdigest()[:16]
    texts, images = slots_to_lists(slots, lambda i: str(image_folder / paths[i]))
    return SynthRecord.document(rid, group, level, texts, images, prov)
