"""The JSONL record shared by ``unifilter-hf synth`` output and the ``UniFilterSynthetic`` builder.

One line per (source, level). A caption record holds ``image`` (a path relative to the output folder) and
``text``; a document record holds OBELICS-style parallel ``images``/``texts`` lists, each slot exactly one
of the two (the other is ``null``)::

    {"id": "bundled/astronaut/L2", "group_id": "bundled/astronaut", "kind": "caption", "level": 2,
     "label": "hard_negative", "image": "images/3f2a....png", "text": "...",
     "provenance": {"generator": "rule-based", "model": null, "prompt_version": "uf-synth-v1", "seed": 0,
                    "extra": {"edits": [{"type": "color", "start": 41, "end": 47, "before": "orange",
                                         "after": "blue"}]}}}

Example:
    >>> rec = SynthRecord.caption("g/L3", "g", 3, "images/a.png", "a cat", Provenance("rule-based"))
    >>> SynthRecord.from_dict(rec.to_dict()) == rec
    True
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .levels import KINDS, level_name

# The records file of a synthesis output folder.
RECORDS = "records.jsonl"


@dataclass
class Provenance:
    """Where a record comes from: enough to regenerate or audit it."""

    generator: str
    model: str | None = None
    prompt_version: str | None = None
    seed: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Provenance:
        return cls(
            generator=str(data.get("generator") or "unknown"),
            model=data.get("model"),
            prompt_version=data.get("prompt_version"),
            seed=data.get("seed"),
            extra=dict(data.get("extra") or {}),
        )


@dataclass
class SynthRecord:
    """One text version (one level) of one source; see the module docstring for the JSON form."""

    id: str
    group_id: str
    kind: str
    level: int
    provenance: Provenance
    text: str | None = None
    image: str | None = None
    texts: list[str | None] | None = None
    images: list[str | None] | None = None

    @classmethod
    def caption(cls, id: str, group_id: str, level: int, image: str, text: str, provenance: Provenance):
        return cls(id, group_id, "caption", level, provenance, text=text, image=image)

    @classmethod
    def document(
        cls,
        id: str,
        group_id: str,
        level: int,
        texts: list[str | None],
        images: list[str | None],
        provenance: Provenance,
    ):
        return cls(id, group_id, "interleaved", level, provenance, texts=list(texts), images=list(images))

    def validate(self) -> None:
        """Raise ``ValueError`` if the record breaks the format (never write such a record)."""
        if self.kind not in KINDS:
            raise ValueError(f"{self.id}: kind must be one of {KINDS}, got {self.kind!r}")
        level_name(self.level)  # raises on a level outside 0..3
        if self.kind == "caption":
            if not self.image or not (self.text or "").strip():
                raise ValueError(f"{self.id}: a caption record needs an image and a non-empty text")
            return
        texts, images = self.texts or [], self.images or []
        if len(texts) != len(images) or not texts:
            raise ValueError(f"{self.id}: texts and images must be non-empty parallel lists")
        for i, (t, im) in enumerate(zip(texts, images)):
            if (t is None) == (im is None):
                raise ValueError(f"{self.id}: slot {i} must hold exactly one of a text or an image")
        if all(im is None for im in images) or all(t is None for t in texts):
            raise ValueError(f"{self.id}: a document needs at least one text and one image")

    @property
    def image_paths(self) -> list[str]:
        """Image paths in reading order."""
        if self.kind == "caption":
            return [self.image] if self.image else []
        return [im for im in self.images or [] if im is not None]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "group_id": self.group_id,
            "kind": self.kind,
            "level": int(self.level),
            "label": level_name(self.level),
        }
        if self.kind == "caption":
            out.update(image=self.image, text=self.text)
        else:
            out.update(images=self.images, texts=self.texts)
        out["provenance"] = asdict(self.provenance)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SynthRecord:
        prov = Provenance.from_dict(data.get("provenance") or {})
        kind = data.get("kind", "caption")
        if kind == "caption":
            return cls(data["id"], data["group_id"], kind, int(data["level"]), prov,
                       text=data.get("text"), image=data.get("image"))
        return cls(data["id"], data["group_id"], kind, int(data["level"]), prov,
                   texts=list(data.get("texts") or []), images=list(data.get("images") or []))


def read_records(path: str | os.PathLike) -> Iterator[SynthRecord]:
    """Yield the records of a JSONL file; a truncated last line (an interrupted run) is skipped."""
    with open(path, encoding="utf-8") as fh:
        lines = fh.readlines()
    for n, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            if n == len(lines) - 1:  # the write of the last line was interrupted
                return
            raise ValueError(f"{path}: line {n + 1} is not valid JSON") from None
        yield SynthRecord.from_dict(data)


def record_to_sample(record: SynthRecord | dict[str, Any], root: str | os.PathLike = "."):
    """Turn a record into a :class:`~unifilter_hf.sample.Sample` with images loaded from ``root``.

    Example:
        >>> # sample = record_to_sample(rec, "out/synth"); sample.kind -> "caption" or "document"
    """
    from ..image_loading import load_image
    from ..sample import Sample

    rec = record if isinstance(record, SynthRecord) else SynthRecord.from_dict(record)

    def load(rel: str):
        return load_image(Path(root) / rel)

    if rec.kind == "caption":
        sample = Sample.caption(load(rec.image), rec.text)
    else:
        sample = Sample.document(list(rec.texts), [None if p is None else load(p) for p in rec.images])
    sample.meta.update(id=rec.id, group_id=rec.group_id, level=rec.level)
    return sample
