"""Why a document scored as it did: leave-one-slot-out attribution through the ordinary scorer.

For a document with slots ``s_1 .. s_n`` (each an image or a paragraph), the document is scored once whole
and once without each slot; a slot's *contribution* is ``score(whole) - score(without it)``. A negative
contribution means the document scores higher without that slot: the slot pulls it down (an unrelated image,
an off-topic paragraph). All ``n + 1`` versions go through :meth:`QualityScorer.score_samples` in one call,
so they are batched, bucketed and padded exactly as when curating.

What it does not mean: contributions are not additive (removing two slots is not the sum of removing each),
a removed slot also shifts the positions of everything after it, and the model never saw documents with a
slot missing during training, so a contribution is the model's reaction to one edit, not a ground truth.
Captions have no slots to leave out (a caption without its image or text is another kind of input), so they
are not explained.

Example:
    >>> from PIL import Image
    >>> from unifilter_hf.tiny import tiny_model_and_processor
    >>> from unifilter_hf.scoring import QualityScorer
    >>> from unifilter_hf.sample import Sample
    >>> scorer = QualityScorer(*tiny_model_and_processor(seed=0))
    >>> doc = Sample.document(["A red square.", None, "A blue disc."], [None, Image.new("RGB", (32, 32)), None])
    >>> result = explain(doc, scorer)
    >>> [s.kind for s in result.slots], len(result.slots)
    (['text', 'image', 'text'], 3)
    >>> abs(result.slots[1].contribution - (result.score - result.slots[1].score_without)) < 1e-12
    True
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..sample import Sample


@dataclass
class SlotEffect:
    """One slot of a document and what leaving it out does to the score."""

    index: int  # position in the document's slot lists
    kind: Literal["image", "text"]
    score_without: float | None  # None when the document without this slot could not be scored
    contribution: float | None  # score(whole) - score(without); negative: the slot lowers the score
    error: str | None = None


@dataclass
class Attribution:
    """The whole document's score and one :class:`SlotEffect` per slot, in reading order."""

    score: float
    slots: list[SlotEffect] = field(default_factory=list)
    error: str | None = None

    def most_negative(self) -> SlotEffect | None:
        """The slot whose removal raises the score most (None when no slot lowers it)."""
        effects = [s for s in self.slots if s.contribution is not None and s.contribution < 0]
        return min(effects, key=lambda s: s.contribution, default=None)


def _without(sample: Sample, index: int) -> Sample:
    keep = [k for k in range(len(sample.texts)) if k != index]
    return Sample.document([sample.texts[k] for k in keep], [sample.images[k] for k in keep])


def _slots(sample: Sample) -> list[tuple[int, str]]:
    return [(k, "image" if image is not None else "text")
            for k, (text, image) in enumerate(zip(sample.texts, sample.images)) if image is not None or text]


def explain_many(samples: Sequence[Sample], scorer) -> list[Attribution]:
    """:func:`explain` for several documents, all their versions scored in one batched call."""
    for sample in samples:
        if sample.kind != "document":
            raise ValueError("leave-one-slot-out explains documents; a caption has no slot to leave out")
    versions: list[Sample] = []
    spans: list[tuple[int, list[tuple[int, str]]]] = []
    for sample in samples:
        slots = _slots(sample)
        spans.append((len(versions), slots))
        versions.append(sample)
        versions.extend(_without(sample, k) for k, _ in slots)
    records = scorer.score_samples(versions)
    results = []
    for start, slots in spans:
        whole = records[start]
        if not whole.ok:
            results.append(Attribution(score=math.nan, error=whole.error))
            continue
        effects = []
        for offset, (k, kind) in enumerate(slots, start=1):
            rec = records[start + offset]
            if rec.ok:
                effects.append(SlotEffect(k, kind, rec.score, whole.score - rec.score))
            else:
                effects.append(SlotEffect(k, kind, None, None, rec.error))
        results.append(Attribution(score=whole.score, slots=effects))
    return results


def explain(sample: Sample | Mapping[str, Any], scorer=None) -> Attribution:
    """Leave-one-slot-out attribution of one document (a :class:`Sample` or a dataset row).

    ``scorer`` is a :class:`~unifilter_hf.scoring.QualityScorer`, a model name or folder, or None for the
    default model (``$UNIFILTER_MODEL``). A row is read with :func:`~unifilter_hf.row_layouts.to_sample`
    (its images are loaded; a row that cannot be read raises :class:`~unifilter_hf.sample.SampleError`).
    """
    from ..scoring import QualityScorer

    if not isinstance(scorer, QualityScorer):
        scorer = QualityScorer.from_pretrained(scorer)
    if not isinstance(sample, Sample):
        from ..row_layouts import to_sample

        sample = to_sample(sample, **scorer.row_options)
    return explain_many([sample], scorer)[0]
