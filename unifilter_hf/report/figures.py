"""The report's PNG figures, drawn with matplotlib (Agg backend: no display needed).

Each function takes a :class:`~unifilter_hf.report.run_data.RunData` and a path, writes one PNG and returns
the path, or returns None when the run has nothing to draw (no errors, no logged timings).

Example:
    >>> levels_axis()
    ['0\\neasy_negative', '1\\nmedium_negative', '2\\nhard_negative', '3\\npositive']
"""

from __future__ import annotations

import functools
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: reports are written on servers and in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..levels import LEVEL_NAMES  # noqa: E402
from .run_data import BIN_WIDTH, KindStats, RunData  # noqa: E402

CUT_COLOUR = "#d62728"


def _plain_text(draw):
    """Draw with ``text.parse_math`` off: labels hold row text (error reasons, paths, shard names), and a
    ``$\\foo{$`` in them must print as written, not be parsed as math (which fails the whole figure)."""

    @functools.wraps(draw)
    def drawn(*args, **kwargs):
        with matplotlib.rc_context({"text.parse_math": False}):
            return draw(*args, **kwargs)

    return drawn


def levels_axis() -> list[str]:
    return [f"{k}\n{name}" for k, name in enumerate(LEVEL_NAMES)]


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def _kind_axes(run: RunData, height: float = 3.0):
    kinds = run.kinds
    fig, axes = plt.subplots(1, len(kinds), figsize=(5 * len(kinds), height), squeeze=False)
    return fig, list(zip(kinds, axes[0]))


def _rebinned(stats: KindStats, bins: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """The fine histogram summed into at most ``bins`` bars over the kind's own score range."""
    edges, counts = stats.edges(), stats.hist
    used = np.nonzero(counts)[0]
    first, last = used[0], used[-1] + 1
    step = max(1, -(-(last - first) // bins))
    starts = np.arange(first, last, step)
    return edges[np.append(starts, min(starts[-1] + step, len(counts)))], np.add.reduceat(counts[:last], starts)


@_plain_text
def score_histogram(run: RunData, path: Path) -> Path:
    """Scores per kind (rows with an error left out), with the selection's cut as a red line."""
    fig, panels = _kind_axes(run)
    for kind, ax in panels:
        stats = run.stats[kind]
        edges, counts = _rebinned(stats)
        ax.stairs(counts, edges, fill=True, color="#1f77b4")
        cut = run.cut(kind)
        if cut is not None:
            ax.axvline(cut, color=CUT_COLOUR, linewidth=2, label=f"cut {cut:.3f}")
            ax.legend(loc="upper left", fontsize=8)
        ax.set_title(f"{kind}: {stats.rows} scored rows")
        ax.set_xlabel("score (0 worst .. 3 best)")
        ax.set_ylabel("rows")
    return _save(fig, path)


@_plain_text
def kept_fraction(run: RunData, path: Path) -> Path:
    """The share of scored rows at or above each threshold; the chosen cut marked."""
    fig, panels = _kind_axes(run)
    for kind, ax in panels:
        stats = run.stats[kind]
        at_least = np.cumsum(stats.hist[::-1])[::-1] / stats.rows  # share of rows in this bin or above
        edges = stats.edges()[:-1]
        inside = (edges >= min(0.0, stats.low) - BIN_WIDTH) & (edges <= max(3.0, stats.high))
        ax.step(edges[inside], at_least[inside], where="post", color="#1f77b4")
        cut = run.cut(kind)
        if cut is not None:
            share = stats.kept / stats.rows
            ax.axvline(cut, color=CUT_COLOUR, linewidth=1.5)
            ax.plot([cut], [share], "o", color=CUT_COLOUR, label=f"{share:.1%} kept at {cut:.3f}")
            ax.legend(loc="upper right", fontsize=8)
        ax.set_ylim(0, 1.02)
        ax.set_title(kind)
        ax.set_xlabel("threshold")
        ax.set_ylabel("fraction of scored rows kept")
    return _save(fig, path)


@_plain_text
def level_distribution(run: RunData, path: Path) -> Path:
    """Rows per score band (the level each score rounds to), all scored rows beside the kept ones."""
    fig, panels = _kind_axes(run)
    x = np.arange(4)
    for kind, ax in panels:
        stats = run.stats[kind]
        ax.bar(x - 0.2, stats.bands, width=0.4, label="scored", color="#aec7e8")
        ax.bar(x + 0.2, stats.kept_bands, width=0.4, label="kept", color="#2ca02c")
        ax.set_xticks(x, levels_axis(), fontsize=7)
        ax.set_title(kind)
        ax.set_ylabel("rows")
        ax.legend(fontsize=8)
    return _save(fig, path)


@_plain_text
def errors_by_reason(run: RunData, path: Path, top: int = 12) -> Path | None:
    """Rows that could not be scored, by reason (digits folded to N), most frequent first."""
    reasons = list(run.summary.get("errors_by_reason", {}).items())[:top]
    if not reasons:
        return None
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(reasons) + 1.2))
    labels = [r if len(r) <= 60 else r[:57] + "..." for r, _ in reasons][::-1]
    ax.barh(labels, [n for _, n in reasons][::-1], color=CUT_COLOUR)
    ax.set_xlabel("rows")
    ax.set_title("rows with an error, by reason")
    return _save(fig, path)


@_plain_text
def throughput(run: RunData, path: Path) -> Path | None:
    """Rows per second of each scored shard (from ``timings.jsonl``)."""
    timings = [t for t in run.timings if t["seconds"] > 0]
    if not timings:
        return None
    fig, ax = plt.subplots(figsize=(max(5.0, 0.5 * len(timings) + 2), 3))
    rates = [t["rows"] / t["seconds"] for t in timings]
    ax.bar([t["shard"] for t in timings], rates, color="#9467bd")
    total = sum(t["rows"] for t in timings) / sum(t["seconds"] for t in timings)
    ax.axhline(total, color="black", linestyle="--", linewidth=1, label=f"whole job {total:.1f} rows/s")
    ax.tick_params(axis="x", labelrotation=45, labelsize=7)
    ax.set_ylabel("rows / second")
    ax.set_title("scoring throughput per shard")
    ax.legend(fontsize=8)
    return _save(fig, path)


FIGURES = {
    "score_histogram.png": score_histogram,
    "kept_fraction.png": kept_fraction,
    "level_distribution.png": level_distribution,
    "errors_by_reason.png": errors_by_reason,
    "throughput.png": throughput,
}
