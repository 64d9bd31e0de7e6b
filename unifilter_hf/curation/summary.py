"""Job progress (one bar for the whole job: rows/s and ETA) and the end-of-job summary.

Example:
    >>> import pyarrow as pa
    >>> t = pa.table({"index": [0, 1], "key": ["a", "b"], "kind": ["caption", "caption"],
    ...               "score": [2.5, float("nan")], "error": [None, "image 3: truncated file"]})
    >>> s = summarize({"s": t}, {"threshold": 2.0, "settings": {"keep_errors": False}})
    >>> s["counts"]["caption"], s["errors_by_reason"]
    ({'in': 2, 'kept': 1, 'rejected': 1, 'errors': 1}, {'image N: truncated file': 1})
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .selection import decide_many, scores_by_kind

QUANTILES = (0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)


class Progress:
    """A tqdm bar over rows (total when the source knows its size); silent when ``quiet``."""

    def __init__(self, total: int | None, *, quiet: bool, desc: str = "scoring"):
        self.bar = None
        if not quiet:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="row", dynamic_ncols=True)

    def update(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _quantiles(parts: list[np.ndarray]) -> dict[str, float] | None:
    values = np.concatenate(parts) if parts else np.empty(0)
    if not values.size:
        return None
    quantiles = np.quantile(values, QUANTILES, overwrite_input=True)  # values is our own copy
    return {f"q{int(q * 100):02d}": float(v) for q, v in zip(QUANTILES, quantiles)}


def summarize(tables: Mapping[str, pa.Table], plan: Mapping) -> dict:
    """Counts in / kept / rejected / errors by kind, errors by reason (digits as N), score quantiles."""
    counts: dict[str, Counter] = {}
    reasons: Counter = Counter()
    scores: dict[str, list[np.ndarray]] = {}  # per shard arrays: 8 bytes a row, not a Python float each
    for shard, table in tables.items():
        keep = decide_many(plan, shard, table)
        failed = table.column("error").is_valid().to_numpy(zero_copy_only=False)
        kinds = table.column("kind")
        for kind in pc.unique(kinds).to_pylist():
            mine = pc.equal(kinds, kind).to_numpy(zero_copy_only=False)
            c = counts.setdefault(kind, Counter({"in": 0, "kept": 0, "rejected": 0, "errors": 0}))
            kept = int((mine & keep).sum())
            c.update({"in": int(mine.sum()), "kept": kept, "rejected": int(mine.sum()) - kept,
                      "errors": int((mine & failed).sum())})
        for error in table.column("error").filter(pa.array(failed)).to_pylist():
            reasons[re.sub(r"\d+", "N", error)] += 1
        for kind, (_, kind_scores) in scores_by_kind(table).items():
            scores.setdefault(kind, []).append(kind_scores)
    total = Counter()
    for c in counts.values():
        total.update(c)
    return {
        "counts": {kind: dict(c) for kind, c in sorted(counts.items())},
        "total": {k: total.get(k, 0) for k in ("in", "kept", "rejected", "errors")},
        "errors_by_reason": dict(reasons.most_common()),
        "score_quantiles": {kind: _quantiles(v) for kind, v in sorted(scores.items())},
    }


def format_table(summary: Mapping) -> str:
    """A plain-text table of the counts and median scores per kind."""
    lines = [f"{'kind':<10}{'in':>9}{'kept':>9}{'rejected':>10}{'errors':>8}{'median':>9}"]
    for kind, c in summary["counts"].items():
        q = (summary["score_quantiles"].get(kind) or {}).get("q50")
        median = f"{q:9.3f}" if q is not None else f"{'-':>9}"
        lines.append(f"{kind:<10}{c['in']:>9}{c['kept']:>9}{c['rejected']:>10}{c['errors']:>8}{median}")
    t = summary["total"]
    lines.append(f"{'total':<10}{t['in']:>9}{t['kept']:>9}{t['rejected']:>10}{t['errors']:>8}")
    return "\n".join(lines)
