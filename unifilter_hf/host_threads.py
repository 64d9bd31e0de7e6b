"""The scorer's host threads: the next micro-batches prepared while the model runs the current one, and one
torch thread in forked children.

On a GPU the model is fast enough that the host work of a micro-batch (tokenizing, resizing and normalizing
its images: ~5 ms a 500 px photo on one core, `benchmarks/feed_rate.py`) would leave the device idle most
of the time if done in line: at the ~350 captions/s projected for one H100, one core prepares ~180 rows/s.
Threads suffice (no processes): Pillow's resize, numpy and the Rust tokenizer release the GIL, and two
threads prepared 1.5-1.9x the rows of one on two cores. On a CPU the model already uses every core, so there
the default is to prepare in line.

torch's `DataLoader` does the same with worker processes, but it wants a dataset and a collate function
per call; here a call's micro-batches are already planned, so a bounded thread pool is the smaller tool.

Example:
    >>> [r for r in prepared_ahead([[1, 2], [3]], sum, workers=2)]
    [3, 3]
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import torch

T = TypeVar("T")
MAX_AUTO_WORKERS = 4


def _one_thread_after_fork() -> None:
    # torch's OpenMP pool does not survive fork: a forked child (datasets' num_proc workers) that runs torch
    # with the parent's pool size waits forever on the dead pool's threads. One thread per worker is also
    # the right size when several workers share the cores (torch's DataLoader workers do the same).
    torch.set_num_threads(1)


_fork_hook_registered = False


def one_thread_in_forked_children() -> None:
    """Give forked children (`datasets`' `num_proc` workers) one torch thread; registered once, on first use.

    Called when a scorer is built or a `datasets` callable is pickled for workers, never at import: importing
    the package leaves other code's forks alone.
    """
    global _fork_hook_registered
    if not _fork_hook_registered:
        os.register_at_fork(after_in_child=_one_thread_after_fork)
        _fork_hook_registered = True


def default_prepare_workers(device: torch.device | str) -> int:
    """Threads a scorer prepares micro-batches with when not told: none on a CPU (the model uses its cores),
    else up to `MAX_AUTO_WORKERS`, leaving one core to the thread that runs the model."""
    if torch.device(device).type == "cpu":
        return 0
    return max(1, min(MAX_AUTO_WORKERS, (os.cpu_count() or 2) - 1))


def prepared_ahead(batches: Sequence[T], prepare: Callable[[T], Any], workers: int) -> Iterator[Any]:
    """`prepare(batch)` of each batch, in order; with `workers` threads, up to `workers + 1` batches are
    prepared ahead of the one being consumed (a bound on the host memory they hold).

    An exception raised by `prepare` is yielded, not raised, so that the caller decides what a failed batch
    means (the scorer retries its rows one by one). With `workers=0`, or a single batch, nothing is threaded.
    """
    if workers <= 0 or len(batches) < 2:
        for batch in batches:
            yield _attempt(prepare, batch)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="unifilter-prepare") as pool:
        pending: deque[Future] = deque()
        upcoming = iter(batches)

        def submit_next() -> None:
            for batch in upcoming:
                pending.append(pool.submit(_attempt, prepare, batch))
                return

        for _ in range(workers + 1):
            submit_next()
        while pending:
            result = pending.popleft().result()
            submit_next()
            yield result


def _attempt(prepare: Callable[[T], Any], batch: T) -> Any:
    try:
        return prepare(batch)
    except Exception as err:  # noqa: BLE001 - handed to the caller, which owns the per-row policy
        return err


__all__ = ["default_prepare_workers", "one_thread_in_forked_children", "prepared_ahead"]
