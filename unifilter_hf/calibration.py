"""Calibrated levels: a monotone map from a 0..3 score to per-level probabilities (ordinal logistic).

A regression head gives one score per row and no probabilities. After training, :func:`fit_calibration`
fits a cumulative-logit (proportional odds) model on validation scores and labels::

    P(level <= k | s) = sigmoid(theta_k - slope * s),   k = 0, 1, 2,   slope > 0,   theta_0 < theta_1 < theta_2

It returns a small JSON-serialisable dict, meant to be stored as ``config.calibration`` in a checkpoint's
``config.json``; :func:`calibrated_probs` turns scores into ``(n, 4)`` probabilities with it. Because the
slope is positive and the thresholds increase, ``P(level >= k | s)`` is non-decreasing in ``s`` for every
``k`` (so is the expected level), and each row is a proper distribution. Four numbers cannot overfit a
validation split, and unlike isotonic regression the map is smooth and defined for any score.

:func:`expected_calibration_error` is the top-label ECE reported in ``metrics.json``.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> labels = rng.integers(0, 4, 2000)
    >>> scores = labels + rng.normal(0, 0.4, 2000)
    >>> cal = fit_calibration(scores, labels)
    >>> cal["method"], cal["slope"] > 0
    ('ordinal_logistic', True)
    >>> calibrated_probs([0.0, 3.0], cal).argmax(axis=1).tolist()
    [0, 3]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .levels import NUM_LEVELS, levels_of
from .quality_metrics import scores_and_levels

METHOD = "ordinal_logistic"
_L2 = 1e-4  # keeps the fit finite when validation levels are perfectly separable


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free logistic


def _unpack(params: np.ndarray) -> tuple[float, np.ndarray]:
    """Unconstrained params -> (slope > 0, strictly increasing thresholds)."""
    slope = float(np.exp(params[0]))
    thresholds = np.cumsum(np.r_[params[1], np.exp(params[2:])])
    return slope, thresholds


def _loss_and_grad(params: np.ndarray, z: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean negative log-likelihood (+ a small L2 on slope and thresholds) and its gradient."""
    slope, theta = _unpack(params)
    n, k = len(z), len(theta)
    # Cumulative probabilities with the two fixed ends: F_{-1} = 0, F_{K-1} = 1.
    eta = theta[None, :] - slope * z[:, None]  # (n, K-1)
    cum = np.concatenate([np.zeros((n, 1)), _sigmoid(eta), np.ones((n, 1))], axis=1)
    dens = np.concatenate([np.zeros((n, 1)), cum[:, 1:-1] * (1 - cum[:, 1:-1]), np.zeros((n, 1))], axis=1)
    rows = np.arange(n)
    hi, lo = cum[rows, y + 1], cum[rows, y]
    p = np.maximum(hi - lo, 1e-300)
    f_hi, f_lo = dens[rows, y + 1], dens[rows, y]
    loss = -np.log(p).mean() + 0.5 * _L2 * (slope**2 + (theta**2).sum())
    # d(-log p)/d theta_j: -f_hi/p where j == y, +f_lo/p where j == y - 1; d/d slope: z (f_hi - f_lo) / p.
    g_theta = np.bincount(y[y < k], weights=-(f_hi / p)[y < k], minlength=k)[:k]
    g_theta = g_theta + np.bincount(y[y > 0] - 1, weights=(f_lo / p)[y > 0], minlength=k)[:k]
    g_theta = g_theta / n + _L2 * theta
    g_slope = (z * (f_hi - f_lo) / p).mean() + _L2 * slope
    # Chain rule to the unconstrained parameters: slope = exp(p0); theta_j = p1 + sum_{i<=j} exp(p_{i+1}).
    grad = np.empty_like(params)
    grad[0] = g_slope * slope
    grad[1] = g_theta.sum()
    gaps = np.exp(params[2:])
    grad[2:] = gaps * np.cumsum(g_theta[::-1])[::-1][1:]
    return float(loss), grad


def fit_calibration(scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray,
                    max_steps: int = 500) -> dict:
    """Fit the ordinal-logistic map from scores to levels; returns a JSON-serialisable dict.

    Rows with a non-finite score are ignored. The fit runs on standardised scores (gradient descent with a
    backtracking line search, at most ``max_steps`` steps) and the result is expressed on raw scores.

    Returns:
        ``{"method": "ordinal_logistic", "slope": float, "thresholds": [t0, t1, t2], "num_levels": 4,
        "num_examples": int, "nll": float}`` (``nll``: mean negative log-likelihood on the fitted rows).

    Example:
        >>> cal = fit_calibration([0.1, 0.2, 1.1, 0.8, 2.2, 1.9, 2.8, 3.1], [0, 0, 1, 1, 2, 2, 3, 3])
        >>> cal["thresholds"] == sorted(cal["thresholds"])
        True
    """
    scores, labels = scores_and_levels(scores, labels)
    keep = np.isfinite(scores)
    s, y = scores[keep], labels[keep]
    if len(s) == 0:
        raise ValueError("no finite scores to fit a calibration on")
    mean, std = float(s.mean()), float(s.std())
    std = std if std > 0 else 1.0
    z = (s - mean) / std
    # Start from the label frequencies (thresholds at their cumulative logits) and a unit slope.
    cum = np.clip(np.cumsum(np.bincount(y, minlength=NUM_LEVELS))[:-1] / len(y), 0.02, 0.98)
    start = np.maximum.accumulate(np.log(cum / (1 - cum)))
    params = np.r_[0.0, start[0], np.log(np.maximum(np.diff(start), 0.05))]
    loss, grad = _loss_and_grad(params, z, y)
    step = 1.0
    for _ in range(max_steps):
        if np.abs(grad).max() < 1e-7:
            break
        while step > 1e-12:  # Armijo backtracking
            trial = params - step * grad
            trial[2:] = np.maximum(trial[2:], -20.0)  # gaps stay positive (exp(-20) ~ 2e-9) and finite
            new_loss, new_grad = _loss_and_grad(trial, z, y)
            if new_loss <= loss - 1e-4 * step * float(grad @ grad):
                break
            step *= 0.5
        else:
            break
        params, loss, grad = trial, new_loss, new_grad
        step = min(step * 2.0, 64.0)
    slope_z, theta_z = _unpack(params)
    # theta - slope_z * (s - mean) / std = (theta + slope_z * mean / std) - (slope_z / std) * s
    return {
        "method": METHOD,
        "slope": slope_z / std,
        "thresholds": [float(t + slope_z * mean / std) for t in theta_z],
        "num_levels": NUM_LEVELS,
        "num_examples": int(len(s)),
        "nll": float(loss - 0.5 * _L2 * (slope_z**2 + (theta_z**2).sum())),
    }


def calibrated_probs(scores: Sequence[float] | np.ndarray, calibration: dict) -> np.ndarray:
    """Per-level probabilities ``(n, 4)`` for scores under a fitted calibration; rows sum to 1.

    A non-finite score gives a row of NaN (the scorer's failed rows stay failed).

    Example:
        >>> cal = {"method": "ordinal_logistic", "slope": 4.0, "thresholds": [2.0, 6.0, 10.0]}
        >>> calibrated_probs([1.0], cal).round(3).tolist()
        [[0.119, 0.762, 0.117, 0.002]]
    """
    if calibration.get("method") != METHOD:
        raise ValueError(f"unknown calibration method {calibration.get('method')!r}")
    slope = float(calibration["slope"])
    theta = np.asarray(calibration["thresholds"], dtype=np.float64)
    if slope <= 0 or np.any(np.diff(theta) <= 0) or len(theta) != NUM_LEVELS - 1:
        raise ValueError("calibration must have a positive slope and 3 increasing thresholds")
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    cum = _sigmoid(theta[None, :] - slope * scores[:, None])
    n = len(scores)
    probs = np.diff(np.concatenate([np.zeros((n, 1)), cum, np.ones((n, 1))], axis=1), axis=1)
    probs = np.clip(probs, 0.0, None)  # rounding can leave -1e-17
    probs /= probs.sum(axis=1, keepdims=True)
    probs[~np.isfinite(scores)] = np.nan
    return probs


def expected_calibration_error(probs: np.ndarray, labels: Sequence[int] | np.ndarray, bins: int = 10) -> float:
    """Top-label expected calibration error with ``bins`` equal-width confidence bins.

    ECE = sum over bins of (rows in bin / rows) * |accuracy in bin - mean confidence in bin|, where the
    confidence is a row's highest probability and it is correct when that level is the label. Rows with
    NaN probabilities are ignored.

    Example:
        >>> probs = np.array([[0.7, 0.1, 0.1, 0.1]] * 10)
        >>> expected_calibration_error(probs, [0] * 7 + [1] * 3)   # 70% confident, 70% right
        0.0
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels).reshape(-1)
    keep = np.isfinite(probs).all(axis=1)
    probs, labels = probs[keep], labels[keep]
    if len(labels) == 0:
        return float("nan")
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    which = np.minimum((confidence * bins).astype(np.int64), bins - 1)
    ece = 0.0
    for b in np.unique(which):
        in_bin = which == b
        ece += in_bin.mean() * abs(correct[in_bin].mean() - confidence[in_bin].mean())
    return float(round(ece, 12))


def calibration_report(scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray,
                       calibration: dict, bins: int = 10) -> dict:
    """ECE, mean negative log-likelihood and accuracy of the calibrated probabilities (for metrics.json).

    Example:
        >>> cal = fit_calibration([0.0, 0.1, 1.0, 1.1, 2.0, 2.1, 3.0, 2.9], [0, 0, 1, 1, 2, 2, 3, 3])
        >>> calibration_report([0.0, 3.0], [0, 3], cal)["accuracy"]
        1.0
    """
    probs = calibrated_probs(scores, calibration)
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    keep = np.isfinite(probs).all(axis=1)
    p, y = probs[keep], labels[keep]
    if len(y) == 0:
        return {"ece": None, "nll": None, "accuracy": None, "num_examples": 0}
    return {
        "ece": expected_calibration_error(p, y, bins),
        "nll": float(-np.log(np.maximum(p[np.arange(len(y)), y], 1e-300)).mean()),
        "accuracy": float((p.argmax(axis=1) == y).mean()),
        "num_examples": int(len(y)),
    }


def fit_level_thresholds(scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray) -> list[float]:
    """The three increasing cut scores that maximise four-level accuracy on ``scores`` and ``labels``.

    Meant for a *held-out* split (not the one whose accuracy is reported): a model trained with mse tends to
    pull its scores towards the middle (level 3 rows at 2.4 are never rounded to 3), and cuts fitted on scores
    it has not trained on move the decision to where the levels actually separate. An exact search over the
    sorted scores (dynamic programming, one pass per level); a cut lies half-way between two distinct scores,
    so tied scores always share a level. A level that no row should get (a tiny or one-sided split) gets a
    width of 1e-6, so the cuts stay increasing. Non-finite scores are ignored.

    Example:
        >>> fit_level_thresholds([0.0, 0.2, 1.4, 1.6, 2.0, 2.2, 2.4, 2.6], [0, 0, 1, 1, 2, 2, 3, 3])
        [0.8, 1.8, 2.3]
    """
    scores, labels = scores_and_levels(scores, labels)
    keep = np.isfinite(scores)
    order = np.argsort(scores[keep], kind="stable")
    s, y = scores[keep][order], labels[keep][order]
    n = len(s)
    if n == 0:
        raise ValueError("no finite scores to fit level thresholds on")
    # prefix[k, i]: rows of level k among the i lowest scores; a cut may sit at i only between distinct scores.
    prefix = np.zeros((NUM_LEVELS, n + 1), dtype=np.int64)
    for k in range(NUM_LEVELS):
        prefix[k, 1:] = np.cumsum(y == k)
    allowed = np.r_[True, s[1:] > s[:-1], True]
    best = np.where(allowed, prefix[0], -1)  # best[i]: right rows when levels 0..k cover the i lowest scores
    cuts = []
    for k in range(1, NUM_LEVELS):
        # best_k[i] = prefix[k, i] + max over allowed j <= i of (best_{k-1}[j] - prefix[k, j])
        gain = np.where(allowed & (best >= 0), best - prefix[k], np.iinfo(np.int64).min // 2)
        arg = np.maximum.accumulate(np.where(gain == np.maximum.accumulate(gain), np.arange(n + 1), 0))
        cuts.append(arg)
        best = np.where(allowed, prefix[k] + gain[arg], -1)
    # Walk back from "all rows covered" to the three cut positions.
    positions, i = [], n
    for arg in reversed(cuts):
        i = int(arg[i])
        positions.append(i)
    positions.reverse()
    edges = np.r_[s[0] - 1.0, s, s[-1] + 1.0]  # edges[i] and edges[i + 1] are the scores either side of cut i
    values = [float(round((edges[i] + edges[i + 1]) / 2, 12)) for i in positions]
    for k in range(1, len(values)):  # a level no row should get (two cuts in one place): keep them increasing
        values[k] = max(values[k], values[k - 1] + _EMPTY_LEVEL_WIDTH)
    return values


_EMPTY_LEVEL_WIDTH = 1e-6  # the width given to a level the fit leaves empty: no real score falls inside


def to_level_scale(scores: Sequence[float] | np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    """Scores moved monotonically so that the package's one level rule (nearest level, half up) gives the
    fitted levels: cut ``k`` goes to ``k + 0.5``, linearly in between, shifted by the same amount outside.

    Example:
        >>> to_level_scale([0.0, 0.8, 1.3, 2.3, 3.0], [0.8, 1.8, 2.3]).round(3).tolist()
        [-0.3, 0.5, 1.0, 2.5, 3.2]
    """
    t = np.asarray(thresholds, dtype=np.float64)
    if len(t) != NUM_LEVELS - 1 or np.any(np.diff(t) <= 0):
        raise ValueError(f"need {NUM_LEVELS - 1} increasing level thresholds, got {list(thresholds)}")
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    targets = np.arange(NUM_LEVELS - 1) + 0.5
    out = np.interp(scores, t, targets)
    out = np.where(scores < t[0], scores - t[0] + targets[0], out)
    return np.where(scores > t[-1], scores - t[-1] + targets[-1], out)


def decided_levels(scores: Sequence[float] | np.ndarray, calibration: dict | None = None) -> np.ndarray:
    """Levels of scores: the one level rule, on the held-out-fitted scale when ``calibration`` has
    ``level_thresholds`` (as a trained checkpoint's ``config.calibration`` does), on raw scores otherwise.

    Example:
        >>> decided_levels([2.35, 2.2], {"level_thresholds": [0.8, 1.8, 2.3]}).tolist()
        [3, 2]
    """
    thresholds = (calibration or {}).get("level_thresholds")
    return levels_of(scores if thresholds is None else to_level_scale(scores, thresholds))


__all__ = ["calibrated_probs", "calibration_report", "decided_levels", "expected_calibration_error",
           "fit_calibration", "fit_level_thresholds", "to_level_scale"]
