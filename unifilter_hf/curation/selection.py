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

import pyarrow as pa

from ..scoring import DEFAULT_THRESHOLD


def _ok(row: Mapping) -> bool:
    score = row["score"]
    return row["error"] is None and score is not None and not math.isnan(score)


def _rank(shard: str, row: Mapping) -> tuple:
    return (-row["score"], row["key"], shard, row["index"])


def make_plan(tables: Mapping[str, pa.Table], settings: Mapping) -> dict:
    """The selection plan (JSON-serialisable) from every shard's sidecar columns."""
    plan = {"settings": dict(settings)}
    if settings.get("top_fraction") is None:
        threshold = settings.get("threshold")
        plan["threshold"] = DEFAULT_THRESHOLD if threshold is None else float(threshold)
        return plan
    fraction = float(settings["top_fraction"])
    ranks: dict[str, list[tuple]] = {}
    for shard, table in tables.items():
        for row in table.select(["index", "key", "kind", "score", "error"]).to_pylist():
            if _ok(row):
                ranks.setdefault(row["kind"], []).append(_rank(shard, row))
    cuts = {}
    for kind, entries in sorted(ranks.items()):
        keep = math.floor(fraction * len(entries) + 1e-9)
        cut = None
        if keep:
            # Only the k-th smallest is needed; a full sort keeps it simple and exact.
            neg_score, key, shard, index = sorted(entries)[keep - 1]
            cut = [float(neg_score).hex(), key, shard, index]
        cuts[kind] = {"rows": len(entries), "kept": keep, "cut": cut}
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
