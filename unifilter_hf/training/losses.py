"""The training objective: one of the UniFilter losses, plus an optional weighted pairwise term.

The losses themselves are defined once, in :mod:`unifilter_hf.quality_losses` (the model uses them too);
this module composes them and re-exports them for training code.

Example:
    >>> import torch
    >>> scores, levels = torch.tensor([2.5, 0.5]), torch.tensor([3.0, 0.0])
    >>> round(float(quality_loss("pairwise", scores[:, None], scores, levels, torch.tensor([0, 0]))), 4)
    0.1269
"""

from __future__ import annotations

import torch

from ..quality_losses import ce_loss, count_pairs, mse_loss, pairwise_loss

LOSSES = ("mse", "ce", "pairwise")


def quality_loss(
    loss_type: str,
    logits: torch.Tensor,
    scores: torch.Tensor,
    levels: torch.Tensor,
    groups: torch.Tensor | None = None,
    pairwise_weight: float = 0.0,
    num_items_in_batch: torch.Tensor | int | None = None,
    num_pairs: torch.Tensor | int | None = None,
) -> torch.Tensor:
    """The training objective: ``mse``, ``ce`` or ``pairwise`` alone, plus ``pairwise_weight`` x pairwise.

    ``num_items_in_batch`` / ``num_pairs``: the rows / ordered pairs of the whole optimizer step when
    accumulating (default: this batch's, a mean).

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
        loss = mse_loss(scores, levels, num_items_in_batch)
    elif loss_type == "ce":
        loss = ce_loss(logits, levels, num_items_in_batch)
    else:
        return pairwise_loss(scores, levels, groups, num_pairs)
    if pairwise_weight:
        loss = loss + pairwise_weight * pairwise_loss(scores, levels, groups, num_pairs)
    return loss


__all__ = ["LOSSES", "ce_loss", "count_pairs", "mse_loss", "pairwise_loss", "quality_loss"]
