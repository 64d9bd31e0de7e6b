"""Selection: one global decision per row from the sidecars, by threshold or by an exact top fraction.

- ``threshold=T``: a scored row is kept when ``score >= T``.
- ``top_fraction=F``: per kind (captions and documents are ranked separately), the ``floor(F * n)`` best
  of the ``n`` scored rows are kept. Rows are ranked by score, then by row key, shard name and row position,
  so ties are broken deterministically. The plan stores the last kept row as a *cut*; a row is kept when its
  rank tuple is not after the cut, a pure per-row test that each shard can apply on its own.
- Rows with an error are rejected, or kept (with their error column) under ``keep_errors``.

Example:
    >>> import pyarrow as pa
    >>> t = pa.table({"index": [0, 1, 2], "key": ["a", "b", "c"], "kind": ["caption"] * 3,
    ...               "score": [1.0, 3.0, 2.0], "error": [None, None, None]})
    >>> plan = make_plan({"s": t}, {"threshold": None, "top_fraction": 0.67, "keep_errors": False})
    >>> [decide(plan, "s", r)[0] for r in t.to_pylist()]
    [False, True, True]
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..scoring import DEFAULT_THRESHOLD


def _ok(row: Mapping) -> bool:
    score = row["score"]
    return row["error"] is None and score is not None and not math.isnan(score)


def _rank(shard: str, row: Mapping) -> tuple:
    return (-row["score"], row["key"], shard, row["index"])


def _scores_and_ok(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """A sidecar table's scores and which rows are scored (no error, finite score): :func:`_ok`, vectorized."""
    scores = table.column("score").to_numpy(zero_copy_only=False).astype(np.float64)
    return scores, table.column("error").is_null().to_numpy(zero_copy_only=False) & ~np.isnan(scores)


def scores_by_kind(table: pa.Table) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """For each kind of a sidecar table: the positions of its scored rows (no error, finite score) and their
    scores. Numpy arrays only: nothing per row is turned into a Python object."""
    scores, ok = _scores_and_ok(table)
    kinds = table.column("kind")
    out = {}
    for kind in pc.unique(kinds).to_pylist():
        where = np.flatnonzero(ok & pc.equal(kinds, kind).to_numpy(zero_copy_only=False))
        out[kind] = (where, scores[where])
    return out


def _rows_scored(table: pa.Table, kind: str, score: float) -> list[dict]:
    """``key`` and ``index`` of a sidecar's scored rows of ``kind`` with exactly ``score``."""
    where, scores = scores_by_kind(table)[kind]
    return table.select(["key", "index"]).take(where[scores == score]).to_pylist()


def make_plan(tables: Mapping[str, pa.Table], settings: Mapping) -> dict:
    """The selection plan (JSON-serialisable) from every shard's sidecar columns.

    The top-fraction cut is exact with about 16 bytes per scored row (its scores and one copy): the k-th best
    score comes from a partial sort of each kind's scores, and only the rows tied at that score are ranked by
    key, shard and position (their keys are read again, from those shards only).
    """
    plan = {"settings": dict(settings)}
    if settings.get("top_fraction") is None:
        threshold = settings.get("threshold")
        plan["threshold"] = DEFAULT_THRESHOLD if threshold is None else float(threshold)
        return plan
    fraction = float(settings["top_fraction"])
    scored = {shard: {kind: scores for kind, (_, scores) in scores_by_kind(table).items()}
              for shard, table in tables.items()}  # 8 bytes a scored row; positions are looked up for ties only
    kinds = sorted({kind for per_kind in scored.values() for kind in per_kind})
    cuts = {}
    for kind in kinds:
        parts = {shard: per_kind[kind] for shard, per_kind in scored.items() if kind in per_kind}
        negated = np.concatenate(list(parts.values()))
        np.negative(negated, out=negated)
        keep = math.floor(fraction * len(negated) + 1e-9)
        cut = None
        if keep:
            negated.partition(keep - 1)  # in place: no third copy of the scores
            kth = float(negated[keep - 1])  # the k-th best score, negated
            above = int((negated < kth).sum())  # rows that outrank every row tied at the k-th score
            ties = sorted(
                (row["key"], shard, row["index"])
                for shard, shard_scores in parts.items() if (shard_scores == -kth).any()
                for row in _rows_scored(tables[shard], kind, -kth)
            )
            key, shard, index = ties[keep - above - 1]
            cut = [kth.hex(), key, shard, index]
        cuts[kind] = {"rows": len(negated), "kept": keep, "cut": cut}
        del negated
    plan["cuts"] = cuts
    return plan


def decide(plan: Mapping, shard: str, row: Mapping) -> tuple[bool, str | None]:
    """``(keep, reason)`` for one sidecar row; ``reason`` says why a row is rejected."""
    if not _ok(row):
        if plan["settings"].get("keep_errors"):
            return True, None
        return False, f"error: {row['error']}"
    if "threshold" in plan:
        threshold = plan["threshold"]
        return (True, None) if row["score"] >= threshold else (False, f"score below threshold {threshold}")
    entry = plan["cuts"].get(row["kind"])
    fraction = plan["settings"]["top_fraction"]
    if entry is None or entry["cut"] is None:
        return False, f"outside top fraction {fraction} of {row['kind']}"
    neg_hex, key, cut_shard, index = entry["cut"]
    if _rank(shard, row) <= (float.fromhex(neg_hex), key, cut_shard, index):
        return True, None
    return False, f"outside top fraction {fraction} of {row['kind']}"


def decide_many(plan: Mapping, shard: str, table: pa.Table) -> np.ndarray:
    """:func:`decide` for every row of a sidecar table at once: the same answers, as a boolean array.

    Only rows tied with a kind's cut score go through :func:`decide` one by one.
    """
    scores, ok = _scores_and_ok(table)
    if "threshold" in plan:
        keep = ok & (scores >= plan["threshold"])
    else:
        keep = np.zeros(len(scores), dtype=bool)
        for kind, entry in plan["cuts"].items():
            if entry["cut"] is None:
                continue
            cut_score = -float.fromhex(entry["cut"][0])
            mine = ok & pc.equal(table.column("kind"), kind).to_numpy(zero_copy_only=False)
            keep |= mine & (scores > cut_score)
            tied = np.flatnonzero(mine & (scores == cut_score))
            for i, row in zip(tied, table.select(["index", "key", "kind", "score", "error"]).take(tied).to_pylist()):
                keep[i] = decide(plan, shard, row)[0]
    if plan["settings"].get("keep_errors"):
        keep |= ~ok
    return keep

