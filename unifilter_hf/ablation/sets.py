"""The ablation's data: the pool's caption rows, the four equal-size selections, and held-out clean pairs.

Every filter picks ``budget`` rows from the same candidates (the pool's readable caption rows); the evaluation
pairs are clean (level-3) shapes-world pairs whose image and caption appear nowhere in the pool.

Example:
    >>> pairs = [Pair("a", b"x", "one red circle", 3), Pair("b", b"y", "two blue squares", 1)]
    >>> [p.key for p in oracle_set(pairs, 1, seed=0)]
    ['a']
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from ..errors import UniFilterError

FILTERS = ("unifilter", "random", "clip_score", "oracle")


class AblationError(UniFilterError, ValueError):
    """An ablation that cannot be run as asked (told in one line)."""


@dataclass(frozen=True)
class Pair:
    """One image-caption pair: ``key`` (pool id), PNG bytes, caption text, true level (0..3)."""

    key: str
    png: bytes
    text: str
    level: int


def pool_captions(pool_parquet: str | Path) -> list[Pair]:
    """The pool's caption rows that a model can train on: kind ``caption``, no planted defect, in file order."""
    table = pq.read_table(pool_parquet, columns=["id", "kind", "level", "defect", "images", "texts"])
    pairs = []
    for row in table.to_pylist():
        if row["kind"] != "caption" or row["defect"]:
            continue  # broken rows are errors for every filter (curation rejects them); none can train on them
        png = next((im["bytes"] for im in row["images"] if im and im.get("bytes")), None)
        text = next((t for t in row["texts"] if t), None)
        if png is None or text is None:
            continue
        pairs.append(Pair(row["id"], png, text, int(row["level"])))
    return pairs


def read_scores(run_dir: str | Path) -> dict[str, float]:
    """The UniFilter score of each row of a curation run (its ``scores/*.parquet`` sidecars), by key."""
    files = sorted((Path(run_dir) / "scores").glob("*.parquet"))
    if not files:
        raise AblationError(f"no scores/*.parquet in {run_dir}: run `unifilter-hf curate` on the pool first")
    scores = {}
    for path in files:
        for row in pq.read_table(path, columns=["key", "score"]).to_pylist():
            if row["score"] is not None:
                scores[row["key"]] = float(row["score"])
    return scores


def top_by(pairs: Sequence[Pair], budget: int, score: Callable[[Pair], float], seed: int,
           per_image: bool = False) -> list[Pair]:
    """The ``budget`` highest-scoring pairs; ties are broken by a seeded shuffle, not by file order.

    ``per_image``: an image's pairs compete first and only its best-scoring one can be taken (the usual
    de-duplication of a pool where one image comes with several captions).
    """
    order = list(pairs)
    random.Random(seed).shuffle(order)
    ranked = sorted(order, key=score, reverse=True)
    if per_image:
        seen: set[bytes] = set()
        ranked = [p for p in ranked if not (p.png in seen or seen.add(p.png))]
    return ranked[:budget]


def oracle_set(pairs: Sequence[Pair], budget: int, seed: int, per_image: bool = False) -> list[Pair]:
    """The best any filter can do: rows taken by their true level."""
    return top_by(pairs, budget, lambda p: p.level, seed, per_image)


def random_set(pairs: Sequence[Pair], budget: int, seed: int, per_image: bool = False) -> list[Pair]:
    """A uniform random subset (no filter); ``per_image``: of one random caption per image."""
    rng = random.Random(f"random-set|{seed}")
    if per_image:
        return top_by(pairs, budget, lambda p: rng.random(), seed, per_image)
    return rng.sample(list(pairs), budget)


def unifilter_set(pairs: Sequence[Pair], budget: int, scores: dict[str, float], seed: int,
                  per_image: bool = False) -> list[Pair]:
    """The rows UniFilter keeps: top ``budget`` by the trained scorer's score (a row it did not score is last)."""
    missing = [p.key for p in pairs if p.key not in scores]
    if len(missing) == len(pairs):
        raise AblationError("the curation run scored none of the pool's caption rows: was it run on this pool?")
    return top_by(pairs, budget, lambda p: scores.get(p.key, float("-inf")), seed, per_image)


def check_sets(sets: dict[str, list[Pair]], evaluation: Sequence[Pair], budget: int) -> None:
    """Refuse sets of unequal size, with repeated rows, or sharing an image or caption with the evaluation."""
    held_images = {p.png for p in evaluation}
    held_texts = {p.text for p in evaluation}
    for name, chosen in sets.items():
        if len(chosen) != budget or len({p.key for p in chosen}) != budget:
            raise AblationError(f"the {name} set has {len({p.key for p in chosen})} distinct rows of {len(chosen)}, "
                                f"not the budget {budget}: the comparison needs equal sizes")
        leaked = [p.key for p in chosen if p.png in held_images or p.text in held_texts]
        if leaked:
            raise AblationError(f"the {name} set shares {len(leaked)} pairs with the evaluation (e.g. {leaked[0]})")


def evaluation_pairs(count: int, pool: Sequence[Pair], seed: int = 1000, image_size: int = 96) -> list[Pair]:
    """``count`` clean shapes-world pairs (validation split, generator ``seed``) not seen in the pool.

    A scene whose image or caption occurs anywhere in the pool is skipped, and captions are distinct (a
    retrieval with two right answers would be ambiguous).
    """
    import io

    from ..synthesis.shapes_world import render_scene, shapes_world_scene

    seen_images, seen_texts = {p.png for p in pool}, {p.text for p in pool}
    pairs: list[Pair] = []
    index = 0
    while len(pairs) < count:
        if index > 50 * count + 1000:
            raise AblationError(f"could not find {count} held-out clean pairs outside the pool")
        s = shapes_world_scene(index, "validation", seed)
        index += 1
        text = s["captions"][3]
        if text in seen_texts:
            continue
        buf = io.BytesIO()
        render_scene(s["scene"], image_size, s["layout_seed"]).save(buf, format="PNG")
        png = buf.getvalue()
        if png in seen_images:
            continue
        seen_images.add(png)
        seen_texts.add(text)
        pairs.append(Pair(f"eval/validation-seed{seed}/s{index - 1:06d}", png, text, 3))
    return pairs


def level_captions(held_out: Sequence[Pair], seed: int) -> list[list[str]]:
    """Each held-out pair's scene captions at levels 0, 1, 2, 3 (the level-3 one is the pair's own caption)."""
    from ..synthesis.shapes_world import shapes_world_scene

    out = []
    for pair in held_out:
        captions = shapes_world_scene(int(pair.key.rsplit("/s", 1)[1]), "validation", seed)["captions"]
        out.append([captions[level] for level in range(4)])
    return out
