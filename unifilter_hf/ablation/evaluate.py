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
