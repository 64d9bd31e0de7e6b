"""Retrieval recall@k of a dual encoder on held-out pairs (pair ``i``'s image goes with caption ``i``).

Example:
    >>> import torch
    >>> eye = torch.eye(3)
    >>> recall_at_k(eye, eye, (1,))
    {'i2t_r1': 1.0, 't2i_r1': 1.0}
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def recall_at_k(images: torch.Tensor, texts: torch.Tensor, ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """Image-to-text and text-to-image recall@k from normalised embeddings (N, D) each.

    A query counts as found at k when its own pair's similarity is among the k highest; a tie with the right
    answer counts against it (a collapsed model that embeds everything alike scores 0, not 1).
    """
    sim = images @ texts.T
    right = sim.diag()
    # rank = how many candidates score at least as high as the right one, the right one excluded
    i2t_rank = (sim >= right[:, None]).sum(1) - 1
    t2i_rank = (sim >= right[None, :]).sum(0) - 1
    out = {}
    for k in ks:
        out[f"i2t_r{k}"] = float((i2t_rank < k).float().mean())
    for k in ks:
        out[f"t2i_r{k}"] = float((t2i_rank < k).float().mean())
    return out


def four_level_accuracy(images: torch.Tensor, level_texts: torch.Tensor) -> float:
    """Zero-shot four-level discrimination: the share of images whose level-3 caption is strictly more similar
    than each of the same scene's level 0, 1 and 2 captions (chance: 0.25).

    ``images`` (N, D) and ``level_texts`` (N, 4, D, levels 0..3 in order), both normalised.

    Example:
        >>> images = torch.eye(2)
        >>> levels = torch.stack([images.flip(0)] * 3 + [images], dim=1)  # levels 0-2 point away, level 3 at it
        >>> four_level_accuracy(images, levels)
        1.0
    """
    sim = torch.einsum("nd,nkd->nk", images, level_texts)
    return float((sim[:, 3] > sim[:, :3].max(1).values).float().mean())
