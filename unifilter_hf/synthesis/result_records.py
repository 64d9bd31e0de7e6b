"""A generator backend's result -> the four records (levels 3..0) it stands for.

Its own module: records know nothing of backends, and backends build on records.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from .backends.base import GenerationResult
from .records import SynthRecord, slots_to_lists


def records_from_result(result: GenerationResult, image_ref: Callable[[int], Any]) -> list[SynthRecord]:
    """The four records (levels 3..0) of a successful generation result.

    ``image_ref(i)`` gives what a record stores for ``result.images[i]``: the runner saves the image and
    returns its path, the builder keeps the in-memory source. ``extra["image_ids"]`` records the stable
    ids of the images each level uses.

    Example:
        >>> # records_from_result(result, lambda i: result.images[i])[0].level -> 3
    """
    item = result.item
    records = []
    for level in (3, 2, 1, 0):
        out = result.outputs[level]
        extra = dict(result.provenance.extra)
        if out.edits:
            extra["edits"] = out.edits
        slots = out.slots or []  # document slots: str texts and int indices into result.images
        used = [0] if item.kind == "caption" else [s for s in slots if isinstance(s, int)]
        if result.image_ids:
            extra["image_ids"] = [result.image_ids[i] for i in used]
        prov = replace(result.provenance, extra=extra)
        rid = f"{item.id}/L{level}"
        if item.kind == "caption":
            rec = SynthRecord.caption(rid, item.id, level, image_ref(0), out.text, prov)
        else:
            rec = SynthRecord.document(rid, item.id, level, *slots_to_lists(slots, image_ref), prov)
        rec.validate()
        records.append(rec)
    return records
