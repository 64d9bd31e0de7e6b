"""The offline demo: build the bundled four-level set, score it with `ds.map`, filter it, report per level.

It runs with no network, so it cannot use the official weights: the scorer is a tiny *randomly initialised*
UniFilter model and its scores carry no meaning. Everything else is the real path: the rule-based generator
makes easy/medium/hard negatives from our hand-written positives over real photographs, and
`unifilter_score` scores captions and documents through `datasets.map`; rows are then filtered on the score.

Example:
    >>> summary = run_demo("out/demo")  # doctest: +SKIP
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

import datasets

from .filtering import unifilter_score
from .synthesis.backends.rule_based import RuleBasedBackend
from .synthesis.bundled import bundled_items
from .synthesis.levels import KINDS, level_name
from .synthesis.records import RECORDS, read_records
from .synthesis.runner import synthesize
from .tiny import tiny_model_and_processor


def _scoring_sets(synth_dir: Path) -> dict[str, datasets.Dataset]:
    """The synthetic records as two Hub-style datasets: captions and OBELICS-layout documents."""
    rows: dict[str, list[dict]] = {kind: [] for kind in KINDS}
    for rec in read_records(synth_dir / RECORDS):
        rows[rec.kind].append({"id": rec.id, "level": rec.level, **rec.with_root(synth_dir).media()})
    return {kind: datasets.Dataset.from_list(r) for kind, r in rows.items() if r}


def run_demo(output: str | Path, threshold: float | None = None, seed: int = 0) -> list[dict]:
    """Generate, score and filter the bundled set under `output`; returns the per-level summary rows.

    `threshold=None` keeps rows at or above each set's median score: the random model's scores sit in a
    narrow band, so a fixed level threshold such as 2.0 would keep nothing.
    """
    datasets.disable_progress_bars()
    output = Path(output)
    synth_dir = output / "synthetic"
    synthesize(bundled_items("both"), RuleBasedBackend(seed=seed), synth_dir, resume=False)

    model, processor = tiny_model_and_processor(seed=seed)
    score = unifilter_score(model=model, processor=processor)
    summary = []
    for kind, ds in _scoring_sets(synth_dir).items():
        scored = ds.map(score, batched=True, batch_size=8)
        finite = [s for s in scored["unifilter_score"] if not math.isnan(s)] or [0.0]
        cut = threshold if threshold is not None else statistics.median(finite)
        # Score once, then filter on the column (`ds.filter(unifilter_keep)` would score a second time).
        kept = scored.filter(
            lambda s, e, cut=cut: e == "" and s >= cut, input_columns=["unifilter_score", "unifilter_error"]
        )
        scored.to_parquet(output / f"{kind}_scores.parquet")
        kept.to_parquet(output / f"{kind}_kept.parquet")
        kept_ids = set(kept["id"])
        for level in range(4):
            rows = [r for r in scored if r["level"] == level]
            finite = [r["unifilter_score"] for r in rows if not math.isnan(r["unifilter_score"])]
            summary.append(
                {
                    "kind": kind,
                    "level": level,
                    "rows": len(rows),
                    "errors": len(rows) - len(finite),
                    "mean_score": sum(finite) / max(len(finite), 1),
                    "kept": sum(r["id"] in kept_ids for r in rows),
                }
            )
    return summary


def format_summary(summary: list[dict]) -> str:
    """A plain-text table of the per-level summary."""
    lines = [f"{'kind':<12} {'level':<16} {'rows':>5} {'errors':>6} {'mean score':>10} {'kept':>5}"]
    for row in summary:
        lines.append(
            f"{row['kind']:<12} {row['level']} {level_name(row['level']):<14} {row['rows']:>5} "
            f"{row['errors']:>6} {row['mean_score']:>10.3f} {row['kept']:>5}"
        )
    return "\n".join(lines)
