"""The report's optional ablation section: read ``RUN_DIR/ablation.json`` (``unifilter-hf ablate``), draw its
bar chart, and lay out its table; nothing when the run has no ablation.

Example:
    >>> ablation_section(Path("no-such-run"), Path("no-such-run/report")) is None
    True
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

FIGURE = "ablation.png"
METRICS = ("i2t_r1", "i2t_r5", "t2i_r1", "t2i_r5", "level_acc")


def _label(metric: str) -> str:
    if metric == "level_acc":
        return "four-level accuracy"
    return metric.replace("i2t", "image→text").replace("t2i", "text→image").replace("_r", " R@")


def ablation_section(run_root: Path, report_dir: Path) -> dict | None:
    """``{"figure", "rows", "text"}`` for the template, or None when ``ablation.json`` is absent."""
    path = Path(run_root) / "ablation.json"
    (Path(report_dir) / FIGURE).unlink(missing_ok=True)
    if not path.is_file():
        return None
    result = json.loads(path.read_text(encoding="utf-8"))
    summary, labels = result["summary"], result["filters"]
    names = list(labels)
    fig, ax = plt.subplots(figsize=(8, 3.2))
    width = 0.8 / len(names)
    for k, name in enumerate(names):
        means = [summary[name][m]["mean"] for m in METRICS]
        stds = [summary[name][m]["std"] for m in METRICS]
        ax.bar([i + (k - (len(names) - 1) / 2) * width for i in range(len(METRICS))], means, width, yerr=stds,
               capsize=2, label=labels[name])
    ax.set_xticks(range(len(METRICS)), [_label(m) for m in METRICS])
    ax.set_ylabel("recall / accuracy (mean ± std over seeds)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(Path(report_dir) / FIGURE, dpi=100)
    plt.close(fig)
    rows = [{"filter": labels[name], "level": f"{summary[name]['mean_level']['mean']:.2f}",
             "cells": [f"{summary[name][m]['mean']:.3f} ± {summary[name][m]['std']:.3f}" for m in METRICS]}
            for name in names]
    closed = result.get("unifilter_gap_closed")
    per_image = (f" (at most one caption per image: each filter's best of the {result['images']} images)"
                 if result.get("per_image") else "")
    text = (f"{result['budget']} caption rows per set out of {result['candidates']}{per_image}, the same small CLIP "
            f"trained on each ({result['recipe']['steps']} steps of batch {result['recipe']['batch_size']}), seeds "
            f"{', '.join(map(str, result['seeds']))}; recall over {result['eval_pairs']} held-out clean pairs "
            "that no set contains.")
    note = result.get("clip_score_note", "")
    if note:  # the note is written to be read in ablation.json too: a sentence of its own here
        text += f" {note[:1].upper()}{note[1:]}."
    if closed is not None:
        text += (f" UniFilter closes {closed:.0%} of the oracle's image→text R@1 gain over random and "
                 + ("beats" if result.get("unifilter_beats_clip_score") else "does not beat")
                 + " the CLIP-score set. Toy scale: see docs/ablation.md for what this does and does not show.")
    return {"figure": FIGURE, "headers": [_label(m) for m in METRICS], "rows": rows, "text": text}
