"""The UniFilter losses on the 0..3 level scale, defined once: MSE (official), cross-entropy, Bradley-Terry.

A leaf module (torch only): the model imports it relatively, so it travels with the model trio as remote code,
and the training objective (:mod:`unifilter_hf.training.losses`) calls the same functions.

Every loss is a sum divided by a count. By default the count is the batch's own (a mean); during gradient
accumulation the trainer passes the count of the whole optimizer step (``num_items_in_batch`` rows,
``num_pairs`` ordered pairs, over all micro-batches and processes), so that the summed micro-batch losses
equal the loss of one big batch, as in transformers' causal-LM loss.

The pairwise term ranks versions of the same source (same group) by level: for every pair ``(i, j)`` of one
group with ``level_i > level_j`` it adds ``-log sigmoid(s_i - s_j)`` (a Bradley-Terry / reward-model loss,
TRL's ``RewardTrainer`` loss generalised from chosen/rejected pairs to all ordered pairs of a group).

Example:
    >>> import torch
    >>> scores, levels = torch.tensor([2.5, 0.5]), torch.tensor([3.0, 0.0])
    >>> round(float(mse_loss(scores, levels)), 4)
    0.25
    >>> round(float(mse_loss(scores, levels, num_items_in_batch=4)), 4)  # half of a 4-row step
    0.125
    >>> round(float(pairwise_loss(scores, levels, torch.tensor([0, 0]))), 4)  # -log sigmoid(2)
    0.1269
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def _normalise(total: torch.Tensor, count, default: int) -> torch.Tensor:
    """``total / count``; ``count`` None means the local count ``default`` (a plain mean)."""
    if count is None:
        return total / max(default, 1)
    if torch.is_tensor(count):
        return total / count.to(total.device, total.dtype).clamp(min=1)
    return total / max(float(count), 1.0)


def mse_loss(scores: torch.Tensor, levels: torch.Tensor, num_items_in_batch=None) -> torch.Tensor:
    """Squared error between the scores and the levels over ``num_items_in_batch`` rows (default: this batch)."""
    scores, levels = scores.float().view(-1), levels.float().view(-1).to(scores.device)
    return _normalise(F.mse_loss(scores, levels, reduction="sum"), num_items_in_batch, scores.numel())


def ce_loss(logits: torch.Tensor, levels: torch.Tensor, num_items_in_batch=None) -> torch.Tensor:
    """Cross-entropy over the levels (a 4-output head) over ``num_items_in_batch`` rows (default: this batch)."""
    levels = levels.long().view(-1).to(logits.device)
    total = F.cross_entropy(logits.float(), levels, reduction="sum")
    return _normalise(total, num_items_in_batch, levels.numel())


def _pair_mask(levels: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    levels, groups = levels.float().view(-1), groups.view(-1).to(levels.device)
    return (groups[:, None] == groups[None, :]) & (levels[:, None] > levels[None, :])  # row i outranks column j


def count_pairs(levels: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """The number of ordered pairs that :func:`pairwise_loss` sums: same group, different level."""
    return _pair_mask(levels, groups).sum()


def pairwise_loss(scores: torch.Tensor, levels: torch.Tensor, groups: torch.Tensor,
                  num_pairs=None) -> torch.Tensor:
    """Bradley-Terry loss summed over the ordered pairs that share a group and differ in level, over
    ``num_pairs`` (default: this batch's pairs). Returns 0 (still differentiable) when the batch has no pair.
    """
    scores = scores.float().view(-1)
    mask = _pair_mask(levels.to(scores.device), groups)
    if not bool(mask.any()):
        return scores.sum() * 0.0
    margins = scores[:, None] - scores[None, :]
    total = F.softplus(-margins[mask]).sum()  # softplus(-x) == -log sigmoid(x), stable
    return _normalise(total, num_pairs, int(mask.sum()))


__all__ = ["ce_loss", "count_pairs", "mse_loss", "pairwise_loss"]
