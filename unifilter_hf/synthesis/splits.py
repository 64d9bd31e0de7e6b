"""The train/validation split of the synthetic data, by connected group, so no source image is in both.

Groups that share a source image (a caption source and a document using the same photograph) form one
component, and a whole component goes to one split, chosen by a hash of the component and ``seed``.
Images that a level-0 negative borrowed from another source as an unrelated distractor are not source
images, so they do not tie groups together.

Example:
    >>> from unifilter_hf.synthesis.records import Provenance, SynthRecord
    >>> recs = [SynthRecord.caption(f"g{i}/L3", f"g{i}", 3, f"{i}.png", "t", Provenance("x")) for i in range(4)]
    >>> sorted(split_by_group(recs, 0.5).values())
    ['train', 'train', 'validation', 'validation']
"""

from __future__ import annotations

import hashlib
from collections import defaultdict

from .records import SynthRecord


def split_by_group(rows: list[SynthRecord], validation_fraction: float, seed: int = 0) -> dict[str, str]:
    """``{group_id: "train" | "validation"}`` so that groups sharing a source image share a split.

    Source images of a group are those of its positive (level 3) when it has one, else all its images.
    Components are scored by a hash of (seed, smallest group id); a score below ``validation_fraction``
    goes to validation. For small sets, each kind with at least two components gets one in each split
    (when ``0 < validation_fraction < 1``).
    """
    by_group: dict[str, list[SynthRecord]] = defaultdict(list)
    for r in rows:
        by_group[r.group_id].append(r)
    parent = {g: g for g in by_group}

    def find(g: str) -> str:
        while parent[g] != g:
            parent[g] = parent[parent[g]]
            g = parent[g]
        return g

    owner: dict[str, str] = {}
    for g, grows in sorted(by_group.items()):
        positives = [r for r in grows if r.level == 3]
        for key in {k for r in (positives or grows) for k in r.source_images}:
            if key in owner:
                a, b = find(owner[key]), find(g)
                if a != b:
                    parent[max(a, b)] = min(a, b)
            else:
                owner[key] = g
    components: dict[str, list[str]] = defaultdict(list)
    for g in by_group:
        components[find(g)].append(g)

    def score(root: str) -> float:
        digest = hashlib.sha256(f"{seed}:{min(components[root])}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64

    scores = {root: score(root) for root in components}
    kinds_of = {root: {r.kind for g in gs for r in by_group[g]} for root, gs in components.items()}
    val = {root for root, s in scores.items() if s < validation_fraction}
    # Small sets: each kind with two or more components gets at least one in each split.
    for kind in sorted({k for ks in kinds_of.values() for k in ks}):
        roots = [r for r in scores if kind in kinds_of[r]]
        if len(roots) < 2:
            continue
        if validation_fraction > 0 and not any(r in val for r in roots):
            val.add(min(roots, key=scores.get))
        if validation_fraction < 1 and all(r in val for r in roots):
            val.discard(max(roots, key=scores.get))
    return {g: ("validation" if root in val else "train") for root, gs in components.items() for g in gs}
