"""``ablate``: four equal-size training sets from one pool, one small CLIP trained on each, retrieval compared.

DataComp's protocol at toy scale: the training recipe and the budget are fixed, only the filter changes
(docs/ablation.md). The filters: ``unifilter`` (top rows by the curation run's scores), ``random``,
``clip_score`` (top rows by the cosine similarity of a small CLIP trained on the whole pool first: offline there
is no pretrained CLIP) and ``oracle`` (rows by true level). Writes ``ablation.json`` in ``output``.

Example:
    >>> ablate("out/demo/pool", "out/demo/curation", settings=AblationSettings(seeds=(0, 1, 2)))  # doctest: +SKIP
    PosixPath('out/demo/curation')
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..curation.manifest import commit, temporary_path
from .clip_model import ClipRecipe, embed, embed_texts, encode_pairs, encode_texts, train_clip
from .evaluate import four_level_accuracy, recall_at_k
from .sets import (
    FILTERS,
    AblationError,
    Pair,
    check_sets,
    evaluation_pairs,
    level_captions,
    oracle_set,
    pool_captions,
    random_set,
    read_scores,
    top_by,
    unifilter_set,
)

ABLATION_FILE = "ablation.json"
METRICS = ("i2t_r1", "i2t_r5", "t2i_r1", "t2i_r5", "level_acc")  # level_acc: zero-shot four-level discrimination
LABELS = {"unifilter": "UniFilter", "random": "random", "clip_score": "CLIP-score", "oracle": "oracle"}


@dataclass
class AblationSettings:
    """The fixed part of the comparison. ``budget`` None: ``top_fraction`` of the candidate caption rows, at
    most the pool's distinct images when each set takes one caption per image."""

    budget: int | None = None
    top_fraction: float = 0.25
    seeds: tuple[int, ...] = (0, 1, 2)
    eval_pairs: int = 250
    eval_seed: int = 1000  # the shapes-world generator seed of the held-out scenes (the demo's pool uses 1)
    recipe: ClipRecipe = field(default_factory=ClipRecipe)
    # Every filter takes at most one caption per image (its best; random: any one), as the feasibility
    # probe's pool had one version per scene: the demo's pool has four captions per image, and a contrastive
    # model given one image with a right and a wrong caption learns less than from either alone (docs/ablation.md).
    per_image: bool = True


def _cosine_scores(pairs: list[Pair], recipe: ClipRecipe, seed: int) -> dict[str, float]:
    """DataComp's CLIP-score baseline offline: a CLIP trained on every candidate, then each pair's cosine."""
    data = encode_pairs([p.png for p in pairs], [p.text for p in pairs], recipe)
    images, texts = embed(train_clip(data, recipe, seed), data)
    cosine = (images * texts).sum(-1)
    return {p.key: float(c) for p, c in zip(pairs, cosine)}


def _stats(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "std": statistics.pstdev(values), "min": min(values),
            "max": max(values)}


def ablate(pool: str | Path, run_dir: str | Path, output: str | Path | None = None, *,
           settings: AblationSettings | None = None, echo: Callable[[str], None] | None = None) -> Path:
    """Run the ablation on ``pool`` (a folder with ``pool.parquet`` or the file) scored by the curation run
    ``run_dir``; writes ``ablation.json`` in ``output`` (default: ``run_dir``, where the report finds it)."""
    settings = settings or AblationSettings()
    recipe = settings.recipe
    if not settings.seeds:
        raise AblationError("give at least one seed")
    started = time.perf_counter()
    pool_file = Path(pool) / "pool.parquet" if Path(pool).is_dir() else Path(pool)
    if not pool_file.is_file():
        raise AblationError(f"no pool at {pool_file}")
    candidates = pool_captions(pool_file)
    images = len({p.png for p in candidates})
    budget = settings.budget
    if budget is None:
        if not 0 < settings.top_fraction <= 1:
            raise AblationError(f"top fraction {settings.top_fraction} is not in (0, 1]: pass e.g. --top-fraction 0.25")
        budget = max(1, round(settings.top_fraction * len(candidates)))
        if settings.per_image:  # a pool may repeat an image: the default fits the pool
            budget = min(budget, images)
    if not 1 <= budget <= len(candidates):
        raise AblationError(f"budget {budget} is not between 1 and the {len(candidates)} candidate caption rows")
    if settings.per_image and budget > images:
        raise AblationError(f"budget {budget} is more than the pool's {images} distinct images, and each set takes "
                            "one caption per image: lower --budget or pass --all-captions")
    scores = read_scores(run_dir)
    held_out = evaluation_pairs(settings.eval_pairs, candidates, settings.eval_seed, 96)
    evaluation = encode_pairs([p.png for p in held_out], [p.text for p in held_out], recipe)
    levels = level_captions(held_out, settings.eval_seed)
    level_ids = encode_texts([t for row in levels for t in row], recipe)  # the images are evaluation's

    runs, sets_info = [], {}
    for seed in settings.seeds:
        clip_scores = _cosine_scores(candidates, recipe, seed)
        one = settings.per_image
        sets = {"unifilter": unifilter_set(candidates, budget, scores, seed, one),
                "random": random_set(candidates, budget, seed, one),
                "clip_score": top_by(candidates, budget, lambda p, s=clip_scores: s[p.key], seed, one),
                "oracle": oracle_set(candidates, budget, seed, one)}
        check_sets(sets, held_out, budget)
        for name in FILTERS:
            chosen = sets[name]
            data = encode_pairs([p.png for p in chosen], [p.text for p in chosen], recipe)
            t0 = time.perf_counter()
            model = train_clip(data, recipe, seed)
            image_emb, text_emb = embed(model, evaluation)
            level_emb = embed_texts(model, *level_ids).view(len(held_out), 4, -1)
            row = {"seed": seed, "set": name, **recall_at_k(image_emb, text_emb),
                   "level_acc": four_level_accuracy(image_emb, level_emb),
                   "mean_level": statistics.fmean(p.level for p in chosen),
                   "level_3_share": sum(p.level == 3 for p in chosen) / budget,
                   "train_seconds": round(time.perf_counter() - t0, 2)}
            runs.append(row)
            sets_info.setdefault(name, []).append({**{k: row[k] for k in ("seed", "mean_level", "level_3_share")},
                                                   "keys": [p.key for p in chosen]})
        if echo:
            echo(f"      seed {seed}: " + ", ".join(
                f"{LABELS[r['set']]} {r['i2t_r1']:.3f}" for r in runs if r["seed"] == seed) + " (i2t R@1)")

    summary = {name: {m: _stats([r[m] for r in runs if r["set"] == name]) for m in (*METRICS, "mean_level")}
               for name in FILTERS}
    gain = summary["oracle"]["i2t_r1"]["mean"] - summary["random"]["i2t_r1"]["mean"]
    closed = (summary["unifilter"]["i2t_r1"]["mean"] - summary["random"]["i2t_r1"]["mean"]) / gain if gain else None
    result = {
        "budget": budget, "candidates": len(candidates), "pool": str(pool_file), "run_dir": str(run_dir),
        "eval_pairs": len(held_out), "eval_seed": settings.eval_seed, "seeds": list(settings.seeds),
        "eval_keys": [p.key for p in held_out], "per_image": settings.per_image, "images": images,
        "recipe": asdict(recipe), "filters": {k: LABELS[k] for k in FILTERS},
        "clip_score_note": "no pretrained CLIP offline: the CLIP-score filter's model is the same small CLIP "
                           "trained on every candidate caption row first, with the ablation's recipe and seed",
        "runs": runs, "summary": summary, "sets": sets_info,
        "unifilter_gap_closed": closed,
        "unifilter_beats_clip_score": (summary["unifilter"]["i2t_r1"]["mean"]
                                       > summary["clip_score"]["i2t_r1"]["mean"]),
        "seconds": round(time.perf_counter() - started, 1),
    }
    out = Path(output or run_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / ABLATION_FILE
    tmp = temporary_path(path)
    tmp.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    commit(tmp, path)
    return out


def format_table(result: dict) -> str:
    """The four-way table as text: mean ± std over seeds of each metric, one filter a line.

    Example:
        >>> s = {"mean": 0.5, "std": 0.1, "min": 0.4, "max": 0.6}
        >>> r = {"seeds": [0], "budget": 4, "eval_pairs": 9, "unifilter_gap_closed": None,
        ...      "summary": {f: {m: s for m in (*METRICS, "mean_level")} for f in FILTERS}}
        >>> print(format_table(r).splitlines()[1])
              filter        mean level  i2t R@1       i2t R@5       t2i R@1       t2i R@5       4-level acc
    """
    per_image = ", one caption per image" if result.get("per_image") else ""
    lines = [f"      {result['budget']} rows per set{per_image}, {len(result['seeds'])} seeds, recall on "
             f"{result['eval_pairs']} held-out clean pairs (mean ± std over seeds)",
             (f"      {'filter':<12}  {'mean level':<12}"
              + "".join(f"{m.replace('_r', ' R@').replace('level_acc', '4-level acc'):<14}" for m in METRICS)).rstrip()]
    for name in FILTERS:
        s = result["summary"][name]
        lines.append(f"      {LABELS[name]:<12}  {s['mean_level']['mean']:<12.2f}"
                     + "".join(f"{s[m]['mean']:.3f} ± {s[m]['std']:.3f} " for m in METRICS).rstrip())
    closed = result.get("unifilter_gap_closed")
    if closed is not None:
        lines.append(f"      UniFilter closes {closed:.0%} of the oracle's i2t R@1 gain over random; "
                     + ("it beats" if result.get("unifilter_beats_clip_score") else "it does NOT beat")
                     + " the CLIP-score set")
    return "\n".join(lines)


__all__ = ["ABLATION_FILE", "AblationError", "AblationSettings", "ablate", "format_table"]
