"""Training losses on the 0..3 level scale: MSE (official), cross-entropy over levels, Bradley-Terry pairwise.

The pairwise term ranks versions of the same source (same ``group_id``) by level: for every pair ``(i, j)`` of
one group with ``level_i > level_j`` it adds ``-log sigmoid(s_i - s_j)`` (a Bradley-Terry / reward-model loss,
TRL's ``RewardTrainer`` loss generalised from chosen/rejected pairs to all ordered pairs of a group).

Example:
    >>> import torch
    >>> scores, levels = torch.tensor([2.5, 0.5]), torch.tensor([3.0, 0.0])
    >>> round(float(mse_loss(scores, levels)), 4)
    0.25
    >>> round(float(pairwise_loss(scores, levels, torch.tensor([0, 0]))), 4)  # -log sigmoid(2)
    0.1269
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

LOSSES = ("mse", "ce", "pairwise")


def mse_loss(scores: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Mean squared error between the scores and the levels (the official recipe, ``num_labels = 1``)."""
    return F.mse_loss(scores.float(), levels.float().view(-1))


def ce_loss(logits: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the four levels (a 4-output head)."""
    return F.cross_entropy(logits.float(), levels.long().view(-1))


def pairwise_loss(scores: torch.Tensor, levels: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """Mean Bradley-Terry loss over all ordered pairs of the batch that share a group and differ in level.

    Returns 0 (still differentiable) when the batch holds no such pair.
    """
    scores, levels, groups = scores.float().view(-1), levels.float().view(-1), groups.view(-1)
    same = groups[:, None] == groups[None, :]
    better = levels[:, None] > levels[None, :]  # row i should outrank column j
    mask = same & better
    if not bool(mask.any()):
        return scores.sum() * 0.0
    margins = scores[:, None] - scores[None, :]
    return F.softplus(-margins[mask]).mean()  # softplus(-x) == -log sigmoid(x), stable


def quality_loss(
    loss_type: str,
    logits: torch.Tensor,
    scores: torch.Tensor,
    levels: torch.Tensor,
    groups: torch.Tensor | None = None,
    pairwise_weight: float = 0.0,
) -> torch.Tensor:
    """The training objective: ``mse``, ``ce`` or ``pairwise`` alone, plus ``pairwise_weight`` x pairwise.

    Example:
        >>> import torch
        >>> logits = torch.tensor([[3.0], [1.0]])
        >>> loss = quality_loss("mse", logits, logits[:, 0], torch.tensor([3.0, 0.0]), torch.tensor([0, 0]), 1.0)
        >>> round(float(loss), 4)  # 0.5 (MSE) + softplus(-2)
        0.6269
    """
    if loss_type not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss_type!r}")
    if loss_type == "pairwise" or pairwise_weight:
        if groups is None:
            raise ValueError("the pairwise loss needs the group of every row")
    if loss_type == "mse":
        loss = mse_loss(scores, levels)
    elif loss_type == "ce":
        loss = ce_loss(logits, levels)
    else:
        return pairwise_loss(scores, levels, groups)
    if pairwise_weight:
        loss = loss + pairwise_weight * pairwise_loss(scores, levels, groups)
    return loss
