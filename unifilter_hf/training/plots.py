"""PNG figures of a training run (matplotlib, Agg backend: no display needed).

Example:
    >>> import numpy as np, tempfile, os
    >>> out = tempfile.mkdtemp()
    >>> p = plot_confusion_matrix(np.eye(4, dtype=int), os.path.join(out, "cm.png"))
    >>> os.path.getsize(p) > 0
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: training runs on servers and in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..levels import LEVEL_NAMES  # noqa: E402


def plot_confusion_matrix(matrix, path: str | Path, names: Sequence[str] = LEVEL_NAMES) -> Path:
    """Rows: true level, columns: predicted level (``levels.levels_of(score)``)."""
    matrix = np.asarray(matrix)
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), v in np.ndenumerate(matrix):
        ax.text(j, i, str(v), ha="center", va="center", color="black")
    ticks = [f"{k}\n{n}" for k, n in enumerate(names)]
    ax.set_xticks(range(len(names)), ticks, fontsize=7)
    ax.set_yticks(range(len(names)), ticks, fontsize=7)
    ax.set_xlabel("predicted level")
    ax.set_ylabel("true level")
    ax.set_title("validation confusion matrix")
    return _save(fig, path)


def plot_score_distribution(scores, labels, path: str | Path) -> Path:
    """Histogram of the validation scores, one colour per true level."""
    scores, labels = np.asarray(scores), np.asarray(labels)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    bins = np.linspace(min(-0.5, scores.min()), max(3.5, scores.max()), 40)
    for level in range(4):
        ax.hist(scores[labels == level], bins=bins, alpha=0.55, label=f"level {level}")
    ax.set_xlabel("score")
    ax.set_ylabel("rows")
    ax.legend()
    ax.set_title("validation score per true level")
    return _save(fig, path)


def plot_training_curve(log_history: Sequence[dict], path: str | Path) -> Path:
    """Training loss per step and, where logged, validation loss and accuracy."""
    train = [(h["step"], h["loss"]) for h in log_history if "loss" in h and "step" in h]
    evals = [(h["step"], h.get("eval_loss"), h.get("eval_accuracy")) for h in log_history if "eval_loss" in h]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if train:
        ax.plot(*zip(*train), label="train loss")
    if evals:
        steps = [e[0] for e in evals]
        ax.plot(steps, [e[1] for e in evals], "o-", label="validation loss")
        if all(e[2] is not None for e in evals):
            ax2 = ax.twinx()
            ax2.plot(steps, [e[2] for e in evals], "s--", color="tab:green", label="validation accuracy")
            ax2.set_ylabel("accuracy")
            ax2.set_ylim(0, 1)
            ax2.legend(loc="upper right")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if train or evals:  # a run shorter than logging_steps has nothing to draw
        ax.legend(loc="upper left")
    ax.set_title("training curve")
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
