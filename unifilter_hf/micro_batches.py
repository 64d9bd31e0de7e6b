"""Micro-batch planning on exact lengths: which rows are scored together (shortest first, bounded padding).

Its own module because the scorer, the benchmarks and the memory check all plan with it, and it needs nothing
but the lengths.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["batch_plan"]


def batch_plan(
    lengths: Sequence[int], batch_size: int, max_padding: float | None = None, max_tokens: int | None = None
) -> list[list[int]]:
    """Indices grouped into micro-batches of at most `batch_size`, shortest rows first, so padding stays small.

    With `max_padding`, a micro-batch also ends before a row that would make its padded positions exceed
    its real ones by more than that fraction: rows of very different lengths (documents) are not padded to
    each other, and a long row then often runs alone, where the decoder needs no padding mask at all.
    With `max_tokens`, a micro-batch also ends before a row that would make its padded positions (rows x
    the longest row) exceed that budget, so a batch's activations are bounded by the budget, not by the
    longest rows; a row longer than the budget runs alone.

    Example:
        >>> batch_plan([30, 5, 20, 6], batch_size=2)
        [[1, 3], [2, 0]]
        >>> batch_plan([30, 5, 20, 6], batch_size=4, max_padding=0.1)
        [[1, 3], [2], [0]]
        >>> batch_plan([30, 5, 20, 6], batch_size=4, max_tokens=60)
        [[1, 3, 2], [0]]
    """
    if max_tokens is not None and max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    plan: list[list[int]] = []
    real = 0
    for i in order:
        full = bool(plan) and len(plan[-1]) >= batch_size
        # Sorted ascending: the new row is the longest, so the batch would pad every row to its length.
        padded = (len(plan[-1]) + 1) * lengths[i] if plan else 0
        padded_over = max_padding is not None and bool(plan) and padded > (1 + max_padding) * (real + lengths[i])
        over_budget = max_tokens is not None and bool(plan) and padded > max_tokens
        if not plan or full or padded_over or over_budget:
            plan.append([])
            real = 0
        plan[-1].append(i)
        real += lengths[i]
    return plan
