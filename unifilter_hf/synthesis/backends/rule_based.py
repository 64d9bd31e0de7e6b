"""Offline generator: from a positive caption or document, derive the other three levels by controlled edits.

No model, no network, deterministic for a seed (each item draws from ``random.Random(f"{seed}|{item.id}")``,
never global state, so results do not depend on batching or order). It needs a positive reference on every
item; the reference is level 3 as is.

Captions:
- 2 hard negative: exactly one property edit (color, count, spatial relation, size or object).
- 1 medium negative: three or four property edits of different kinds where possible.
- 0 easy negative: the positive caption of another, unrelated source from the pool (no shared image, no
  shared topic tag when tags exist, little word overlap), never a rewrite of its own caption.

Documents (OBELICS slots):
- 2: the same images in the same places; two or three factual edits and two writing errors in the text.
- 1: about half the sentences dropped (knowledge-sparse), several writing errors, and the own images moved
  away from the paragraphs they illustrate.
- 0: the images replaced by unrelated images from the pool and inserted at arbitrary places, sentences
  shuffled, and many writing errors.

Every level's edits are kept in its provenance (``extra["edits"]``).

Example:
    >>> from unifilter_hf.synthesis.bundled import bundled_caption_items
    >>> items = bundled_caption_items()
    >>> backend = RuleBasedBackend(seed=0)
    >>> backend.prepare(items)
    >>> res = backend.generate(items[:1])[0]
    >>> res.ok, len(res.outputs[2].edits)
    (True, 1)
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Any

from ..edits import Edit, apply_edits, choose_edits, property_candidates, writing_edits
from .base import GenerationResult, LevelOutput, SourceItem, SynthesisBackend

_STOP = set("a an the of on in at to and or with its it is are was were by for from as that this these those "
            "into onto over under near each one two three four five six seven eight nine ten".split())
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'])")
MAX_OVERLAP = 0.2
#: Version of the edit rules below (stands where model backends record their prompt version).
RULES_VERSION = "uf-rules-v1"


def content_words(text: str) -> set[str]:
    """Lowercased content words, for telling an unrelated caption from a rewrite."""
    return {w for w in re.findall(r"[a-z]+", text.lower()) if w not in _STOP and len(w) > 2}


def word_overlap(a: str, b: str) -> float:
    """Jaccard overlap of content words (0 = nothing in common)."""
    wa, wb = content_words(a), content_words(b)
    return len(wa & wb) / max(1, len(wa | wb))


def split_sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE.split(text.strip()) if s]


class RuleBasedBackend(SynthesisBackend):
    """The offline generator; see the module docstring for what each level is made of.

    ``pool`` (or the items given to :meth:`prepare`) supplies unrelated captions and images for level 0;
    when neither is given, the bundled photographs are the pool.
    """

    name = "rule-based"
    model = None
    prompt_version = RULES_VERSION

    def __init__(self, seed: int = 0, pool: Sequence[SourceItem] | None = None):
        self.seed = int(seed)
        self._pool: list[SourceItem] = sorted(pool, key=lambda it: it.id) if pool is not None else []

    def prepare(self, items: Sequence[SourceItem]) -> None:
        known = {it.id for it in self._pool}
        self._pool = sorted([*self._pool, *(it for it in items if it.id not in known)], key=lambda it: it.id)

    def _pool_items(self) -> list[SourceItem]:
        if not self._pool:
            from ..bundled import bundled_items

            self._pool = sorted(bundled_items("both"), key=lambda it: it.id)
        return self._pool

    def generate(self, items: Sequence[SourceItem]) -> list[GenerationResult]:
        return [self._one(item) for item in items]

    def _one(self, item: SourceItem) -> GenerationResult:
        rng = random.Random(f"{self.seed}|{item.id}")
        res = GenerationResult(item, self.provenance())
        try:
            if item.reference is None:
                raise ValueError("the rule-based backend needs a positive reference caption or document")
            if item.kind == "caption":
                self._caption(item, rng, res)
            else:
                self._document(item, rng, res)
        except ValueError as err:
            res.error = str(err)
            res.outputs = {}
        return res

    # ------------------------------------------------------------------------------------------ captions
    def _caption(self, item: SourceItem, rng: random.Random, res: GenerationResult) -> None:
        positive = " ".join(str(item.reference).split())
        hard = choose_edits(positive, 1, rng)
        if len(hard) != 1:
            raise ValueError("no editable property (color, count, position, size, object) in the positive")
        medium = choose_edits(positive, rng.choice((3, 4)), rng)
        if len(medium) < 2:
            raise ValueError("fewer than two editable properties in the positive")
        other, other_text = self._unrelated_caption(item, positive, rng)
        res.outputs = {
            3: LevelOutput(3, text=positive),
            2: LevelOutput(2, text=apply_edits(positive, hard), edits=_dicts(hard)),
            1: LevelOutput(1, text=apply_edits(positive, medium), edits=_dicts(medium)),
            0: LevelOutput(0, text=other_text, edits=[{"type": "unrelated", "source": other.id}]),
        }

    def _unrelated(self, item: SourceItem, need_caption: bool) -> list[SourceItem]:
        """Pool items unrelated to ``item``: other source, no shared image, no shared tag (when tagged)."""
        own_ids = set(item.image_ids or [])
        own_tags = set(item.tags)
        base = [
            p for p in self._pool_items()
            if p.id != item.id
            and not own_ids & set(p.image_ids or [])
            and (not need_caption or (p.kind == "caption" and isinstance(p.reference, str)))
        ]
        strict = [p for p in base if not (own_tags and set(p.tags) & own_tags)]
        return strict or base

    def _unrelated_caption(self, item: SourceItem, positive: str, rng: random.Random):
        cands = [
            p for p in self._unrelated(item, need_caption=True)
            if word_overlap(str(p.reference), positive) < MAX_OVERLAP
        ]
        if not cands:
            raise ValueError("no unrelated caption in the pool for the easy negative")
        other = rng.choice(cands)
        return other, " ".join(str(other.reference).split())

    # ----------------------------------------------------------------------------------------- documents
    def _document(self, item: SourceItem, rng: random.Random, res: GenerationResult) -> None:
        slots = item.reference_slots() or []
        positive = [s if isinstance(s, int) else " ".join(s.split()) for s in slots]
        own = list(range(item.num_images))

        # level 2: same images and places; factual edits and a couple of writing errors in the text
        l2, e2 = _edit_texts(positive, rng, facts=rng.choice((2, 3)), typos=2)
        if sum(1 for e in e2 if e["type"] in ("color", "count", "spatial", "size", "object")) < 2:
            raise ValueError("fewer than two editable facts in the positive document")

        # level 1: knowledge-sparse text with writing errors; own images misplaced
        sparse = [s if isinstance(s, int) else _thin(s, rng) for s in positive]
        l1, e1 = _edit_texts(sparse, rng, facts=0, typos=rng.choice((4, 5, 6)))
        l1, moved = _misplace_images(l1, own, rng)
        e1 = [{"type": "sparse", "kept_sentences": sum(len(split_sentences(s)) for s in sparse
                                                      if isinstance(s, str))}, *e1, *moved]

        # level 0: unrelated images at arbitrary places in shuffled, error-ridden text
        distractors = self._distractor_images(item, rng)
        res.images = list(item.images) + [src for _, src, _ in distractors]
        res.image_ids = list(item.image_ids or []) + [iid for _, _, iid in distractors]
        first = item.num_images
        l0, e0 = _scramble(positive, list(range(first, first + len(distractors))), rng)
        e0.append({"type": "unrelated_images", "sources": [sid for sid, _, _ in distractors]})

        res.outputs = {
            3: LevelOutput(3, slots=positive),
            2: LevelOutput(2, slots=l2, edits=e2),
            1: LevelOutput(1, slots=l1, edits=e1),
            0: LevelOutput(0, slots=l0, edits=e0),
        }

    def _distractor_images(self, item: SourceItem, rng: random.Random) -> list[tuple[str, Any, str]]:
        """(source id, image source, image id) for as many unrelated images as the item has."""
        pool = self._unrelated(item, need_caption=False)
        choices = [(p.id, src, iid) for p in pool for src, iid in zip(p.images, p.image_ids or [])]
        seen: set[str] = set()
        unique = [c for c in choices if not (c[2] in seen or seen.add(c[2]))]
        if not unique:
            raise ValueError("no unrelated images in the pool for the easy negative")
        rng.shuffle(unique)
        k = max(1, min(item.num_images, len(unique)))
        return unique[:k]


def _dicts(edits: Sequence[Edit], slot: int | None = None) -> list[dict[str, Any]]:
    out = []
    for e in edits:
        d = e.to_dict()
        if slot is not None:
            d["slot"] = slot
        out.append(d)
    return out


def _edit_texts(slots: list[str | int], rng: random.Random, facts: int, typos: int):
    """Spread ``facts`` property edits and ``typos`` writing edits over the text slots.

    Quotas are dealt round-robin over the text slots in random order; each slot's edits are chosen at once
    on its text, so every edit record's offsets refer to that slot's text before this level's edits.
    """
    text_idx = [i for i, s in enumerate(slots) if isinstance(s, str)]
    order = text_idx[:]
    rng.shuffle(order)
    quota = {i: [0, 0] for i in text_idx}
    fact_slots = [i for i in order if property_candidates(slots[i])]
    for which, count, where in ((0, facts, fact_slots), (1, typos, order)):
        for k in range(count if where else 0):
            quota[where[k % len(where)]][which] += 1
    out = list(slots)
    edits: list[dict[str, Any]] = []
    for i in text_idx:
        text = out[i]
        found = choose_edits(text, quota[i][0], rng) if quota[i][0] else []
        found = found + (writing_edits(text, quota[i][1], rng, avoid=found) if quota[i][1] else [])
        out[i] = apply_edits(text, found)
        edits += _dicts(sorted(found, key=lambda e: e.start), slot=i)
    return out, edits


def _thin(text: str, rng: random.Random) -> str:
    """Keep about half the sentences of a paragraph (at least one), in order."""
    sents = split_sentences(text)
    if len(sents) <= 1:
        return text
    keep = sorted(rng.sample(range(len(sents)), max(1, len(sents) // 2)))
    return " ".join(sents[i] for i in keep)


def _misplace_images(slots: list[str | int], images: list[int], rng: random.Random):
    """Move every image to a paragraph boundary other than its own (or to the other end of the text)."""
    texts = [s for s in slots if isinstance(s, str)]
    old_pos = {s: k for k, s in enumerate(slots) if isinstance(s, int)}
    boundaries = list(range(len(texts) + 1))  # insert before text k (len = after the last text)
    # where each image sat, as a boundary index (number of texts before it)
    own_boundary = {img: sum(1 for s in slots[:pos] if isinstance(s, str)) for img, pos in old_pos.items()}
    placement: dict[int, int] = {}
    for img in images:
        options = [b for b in boundaries if abs(b - own_boundary[img]) >= 2] or \
                  [b for b in boundaries if b != own_boundary[img]] or boundaries
        placement[img] = rng.choice(options)
    out: list[str | int] = []
    for b in boundaries:
        out += sorted((img for img, pb in placement.items() if pb == b), key=lambda _: rng.random())
        if b < len(texts):
            out.append(texts[b])
    moved = [{"type": "image_misplaced", "image": img, "from_boundary": own_boundary[img], "to_boundary": pb}
             for img, pb in sorted(placement.items())]
    return out, moved


def _scramble(slots: list[str | int], images: list[int], rng: random.Random):
    """Shuffle all sentences, damage them heavily, and drop the given images in at random sentence gaps."""
    sents = [s for slot in slots if isinstance(slot, str) for s in split_sentences(slot)]
    rng.shuffle(sents)
    sents = sents[: max(2, (len(sents) * 2) // 3)]
    edits: list[dict[str, Any]] = [{"type": "shuffled_sentences"}]
    damaged = []
    for k, s in enumerate(sents):
        n_err = max(2, len(s.split()) // 6)
        found = writing_edits(s, n_err, rng)
        damaged.append(apply_edits(s, found))
        edits += [dict(e.to_dict(), sentence=k) for e in found]
    gaps = sorted(rng.sample(range(len(damaged) + 1), k=min(len(images), len(damaged) + 1)))
    out: list[str | int] = []
    chunk: list[str] = []
    gi = 0
    for k in range(len(damaged) + 1):
        while gi < len(gaps) and gaps[gi] == k:
            if chunk:
                out.append(" ".join(chunk))
                chunk = []
            out.append(images[gi])
            gi += 1
        if k < len(damaged):
            chunk.append(damaged[k])
    if chunk:
        out.append(" ".join(chunk))
    return out, edits
