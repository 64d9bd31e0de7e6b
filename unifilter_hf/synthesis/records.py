"""The one record of the synthetic data: ``unifilter-hf synth`` writes it, the ``UniFilterSynthetic`` builder reads it.

A :class:`SynthRecord` is one text version (one level) of one source. In memory both kinds hold parallel
``texts``/``images`` lists, as :class:`~unifilter_hf.sample.Sample` does: a caption is ``[text]`` /
``[image]``; a document is OBELICS slots, each exactly one of a text or an image (the other ``None``).
Images are paths relative to the output folder in ``records.jsonl``; the builder also holds lazy loaders.

One JSON line per (source, level). A caption line holds ``image`` and ``text``, a document line the
``images``/``texts`` lists::

    {"id": "bundled/astronaut/L2", "group_id": "bundled/astronaut", "kind": "caption", "level": 2,
     "label": "hard_negative", "image": "images/3f2a....png", "text": "...",
     "provenance": {"generator": "rule-based", "model": null, "prompt_version": "uf-synth-v1", "seed": 0,
                    "extra": {"edits": [{"type": "color", "start": 41, "end": 47, "before": "orange",
                                         "after": "blue"}], "image_ids": ["bundled:astronaut"]}}}

``kind`` is ``"caption"`` or ``"document"``; files written before the rename say ``"interleaved"`` and
still read (as ``"document"``).

Example:
    >>> rec = SynthRecord.caption("g/L3", "g", 3, "images/a.png", "a cat", Provenance("rule-based"))
    >>> SynthRecord.from_dict(rec.to_dict()) == rec
    True
    >>> rec.media()
    {'image': 'images/a.png', 'text': 'a cat'}
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from .levels import KINDS, canonical_kind, level_name

# The records file of a synthesis output folder.
RECORDS = "records.jsonl"


@dataclass
class Provenance:
    """Where a record comes from: enough to regenerate or audit it.

    ``source`` names the folder or file the builder read the record from; the runner leaves it unset and
    it is then not written.
    """

    generator: str
    model: str | None = None
    prompt_version: str | None = None
    seed: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    source: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Provenance:
        return cls(
            generator=str(data.get("generator") or "unknown"),
            model=data.get("model"),
            prompt_version=data.get("prompt_version"),
            seed=data.get("seed"),
            extra=dict(data.get("extra") or {}),
            source=data.get("source"),
        )

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if out["source"] is None:  # keep records.jsonl lines as they were before the builder needed it
            del out["source"]
        return out


@dataclass
class SynthRecord:
    """One text version (one level) of one source; see the module docstring for both forms."""

    id: str
    group_id: str
    kind: str
    level: int
    provenance: Provenance
    texts: list[str | None]
    images: list[Any]

    @classmethod
    def caption(cls, id: str, group_id: str, level: int, image: Any, text: str, provenance: Provenance):
        return cls(id, group_id, "caption", level, provenance, [text], [image])

    @classmethod
    def document(
        cls,
        id: str,
        group_id: str,
        level: int,
        texts: list[str | None],
        images: list[Any],
        provenance: Provenance,
    ):
        return cls(id, group_id, "document", level, provenance, list(texts), list(images))

    @property
    def text(self) -> str | None:
        """A caption's text (``None`` for a document)."""
        return self.texts[0] if self.kind == "caption" and self.texts else None

    @property
    def image(self) -> Any:
        """A caption's image (``None`` for a document)."""
        return self.images[0] if self.kind == "caption" and self.images else None

    def validate(self) -> None:
        """Raise ``ValueError`` if the record breaks the format (never write such a record)."""
        if self.kind not in KINDS:
            raise ValueError(f"{self.id}: kind must be one of {KINDS}, got {self.kind!r}")
        level_name(self.level)  # raises on a level outside 0..3
        if self.kind == "caption":
            if len(self.texts) != 1 or len(self.images) != 1 or self.image is None or not (self.text or "").strip():
                raise ValueError(f"{self.id}: a caption record needs an image and a non-empty text")
            return
        if len(self.texts) != len(self.images) or not self.texts:
            raise ValueError(f"{self.id}: texts and images must be non-empty parallel lists")
        for i, (t, im) in enumerate(zip(self.texts, self.images)):
            if (t is None) == (im is None):
                raise ValueError(f"{self.id}: slot {i} must hold exactly one of a text or an image")
        if all(im is None for im in self.images) or all(t is None for t in self.texts):
            raise ValueError(f"{self.id}: a document needs at least one text and one image")

    @property
    def image_paths(self) -> list[Any]:
        """Images in reading order."""
        return [im for im in self.images if im is not None]

    @property
    def source_images(self) -> list[str]:
        """Stable ids of the images this version uses (``extra["image_ids"]``, else its image paths).

        The train/validation split keeps groups that share one of these together.
        """
        return [str(i) for i in self.provenance.extra.get("image_ids") or self.image_paths]

    def media(self) -> dict[str, Any]:
        """The Hub-style media columns: ``image``/``text`` for a caption, ``images``/``texts`` for a document."""
        if self.kind == "caption":
            return {"image": self.image, "text": self.text}
        return {"images": list(self.images), "texts": list(self.texts)}

    def with_root(self, root: str | os.PathLike) -> SynthRecord:
        """A copy whose relative image paths are resolved against ``root`` (an output folder)."""
        images = [None if p is None else str(Path(root) / p) for p in self.images]
        return replace(self, images=images)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "group_id": self.group_id,
            "kind": self.kind,
            "level": int(self.level),
            "label": level_name(self.level),
            **self.media(),
            "provenance": self.provenance.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SynthRecord:
        prov = Provenance.from_dict(data.get("provenance") or {})
        kind = canonical_kind(data.get("kind", "caption"))
        if kind == "caption":
            return cls.caption(data["id"], data["group_id"], int(data["level"]), data.get("image"),
                               data.get("text"), prov)
        return cls(data["id"], data["group_id"], kind, int(data["level"]), prov,
                   list(data.get("texts") or []), list(data.get("images") or []))


def slots_to_lists(
    slots: list[str | int], image_ref: Callable[[int], Any]
) -> tuple[list[str | None], list[Any]]:
    """Document slots (``str`` texts, ``int`` image indices) as parallel ``(texts, images)`` lists.

    Example:
        >>> slots_to_lists(["Intro.", 0, "End."], lambda i: f"img{i}.png")
        (['Intro.', None, 'End.'], [None, 'img0.png', None])
    """
    texts = [s if isinstance(s, str) else None for s in slots]
    images = [image_ref(s) if isinstance(s, int) else None for s in slots]
    return texts, images


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
    rec = rec.with_root(root)
    sample = Sample(rec.kind, list(rec.texts), [None if p is None else load_image(p) for p in rec.images])
    sample.meta.update(id=rec.id, group_id=rec.group_id, level=rec.level)
    return sample
