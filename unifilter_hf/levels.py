"""The 0..3 quality-level scale: level names, the score -> level rule, and whether a head regresses the level.

This is the one definition; the model, the scorer, the pipeline, the metrics, calibration, the report and the
synthetic data all read it from here. It imports nothing from the package, so a saved checkpoint carries it
as remote code next to the model trio.

The rule: a score's level is the level it is closest to, clamped to 0..3, with a score exactly half-way
between two levels going *up* (``floor(clamp(score, 0, 3) + 0.5)``; 0.5 -> 1, 1.5 -> 2, 2.5 -> 3). Half-up is
what a reader of a 0..3 scale expects and treats every boundary alike; Python's ``round`` (half to even)
would put 0.5 in level 0 but 1.5 in level 2. Each level thus owns the scores within 0.5 below to under 0.5
above it. A NaN score (a row that could not be scored) has no level: ``None`` for one score,
:data:`NO_LEVEL` (-1, never equal to a label, rejected by ``np.bincount``) in an array.

Example:
    >>> level_of(2.5), level_of(-0.3), level_of(7.0), level_of(float("nan"))
    (3, 0, 3, None)
    >>> levels_of([0.49, 0.5, 1.5]).tolist()
    [0, 1, 2]
    >>> LEVEL_NAMES[level_of(2.7)], is_regression(1), is_regression(NUM_LEVELS)
    ('positive', True, False)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: Names of levels 0..3 (score = level, 0 worst, 3 best), the four kinds of UniFilter training data.
LEVEL_NAMES: tuple[str, ...] = ("easy_negative", "medium_negative", "hard_negative", "positive")
NUM_LEVELS: int = len(LEVEL_NAMES)
MAX_LEVEL: int = NUM_LEVELS - 1
#: What :func:`levels_of` gives a NaN score.
NO_LEVEL: int = -1


def level_of(score: float) -> int | None:
    """The level of one score (see the module docstring for the rule); ``None`` for NaN.

    Example:
        >>> level_of(1.49), level_of(1.5)
        (1, 2)
    """
    score = float(score)
    if math.isnan(score):
        return None
    return int(math.floor(min(max(score, 0.0), float(MAX_LEVEL)) + 0.5))


def levels_of(scores: Any) -> np.ndarray:
    """The levels of an array of scores as ``int64`` (same rule as :func:`level_of`).

    NaN has no level and gives :data:`NO_LEVEL`.

    Example:
        >>> levels_of([-1.0, 0.5, 2.5, float("inf"), float("nan")]).tolist()
        [0, 1, 3, 3, -1]
    """
    scores = np.asarray(scores, dtype=np.float64)
    nan = np.isnan(scores)
    levels = np.floor(np.clip(np.where(nan, 0.0, scores), 0, MAX_LEVEL) + 0.5).astype(np.int64)
    levels[nan] = NO_LEVEL
    return levels


def is_regression(num_labels_or_config: Any) -> bool:
    """True for a single-output head that regresses the level (the official release), False for a per-level
    classification head. Takes ``num_labels`` or anything with a ``num_labels`` attribute (a config).

    Example:
        >>> is_regression(1), is_regression(4)
        (True, False)
    """
    num_labels = getattr(num_labels_or_config, "num_labels", num_labels_or_config)
    return int(num_labels) == 1


__all__ = ["LEVEL_NAMES", "MAX_LEVEL", "NO_LEVEL", "NUM_LEVELS", "is_regression", "level_of", "levels_of"]
