"""A training sampler that keeps the versions of one source (one ``group_id``) next to each other.

The pairwise loss compares rows of the same group inside a batch, so groups must not be scattered. Groups
are shuffled (per epoch), rows inside a group too, and the indices are yielded group after group; with a
batch size that is a multiple of the group size (4 for the shapes world) no group is ever split.

Example:
    >>> sampler = GroupedSampler(["a", "a", "b", "b", "c", "c"], seed=0)
    >>> order = list(sampler)
    >>> sorted(order) == list(range(6)) and all({order[k], order[k + 1]} in ({0, 1}, {2, 3}, {4, 5}) for k in (0, 2, 4))
    True
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

from torch.utils.data import Sampler


class GroupedSampler(Sampler[int]):
    """Yields dataset indices group by group; call :meth:`set_epoch` (the Trainer does) to reshuffle."""

    def __init__(self, group_ids: Sequence[str], seed: int = 0, shuffle: bool = True):
        self.seed, self.shuffle, self.epoch = seed, shuffle, 0
        groups: dict[str, list[int]] = {}
        for index, group in enumerate(group_ids):
            groups.setdefault(group, []).append(index)
        self.groups = list(groups.values())
        self.num_rows = len(group_ids)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_rows

    def __iter__(self) -> Iterator[int]:
        rng = random.Random(self.seed * 100_003 + self.epoch)
        groups = [list(g) for g in self.groups]
        if self.shuffle:
            rng.shuffle(groups)
            for group in groups:
                rng.shuffle(group)
        for group in groups:
            yield from group
