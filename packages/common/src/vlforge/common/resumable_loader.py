"""A DataLoader that resumes mid-epoch exactly: a seeded per-epoch order and a position Lightning saves in checkpoints.

Lightning stores `state_dict()` of every training loader that has `state_dict` / `load_state_dict` and restores it on
`fit --ckpt_path ...`. Together with `RNGStateCallback` this makes a resumed run end with the same weights as an
uninterrupted one. Map-style (sized) datasets only: with a known length Lightning does not prefetch, so the number of
batches yielded equals the number of batches trained on when a checkpoint is written.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from vlforge.common.distributed import world


class ResumableSampler(DistributedSampler):
    """The order of epoch e is a permutation seeded with seed + e (same as DistributedSampler), split across ranks;
    `start_at` skips the first samples of the next epoch iterated (one rank's share), for a mid-epoch restart.

    Being a DistributedSampler, Lightning leaves it in place under DDP instead of wrapping it.
    """

    def __init__(
        self, dataset: Dataset, *, shuffle: bool = True, seed: int = 0, drop_last: bool = False
    ) -> None:
        rank, num_replicas = world()
        super().__init__(
            dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=drop_last
        )
        self.start_at = 0

    def set_epoch(self, epoch: int) -> None:
        """Ignored: the ResumableDataLoader counts its own epochs (Lightning's count can be off by one after a resume
        from a checkpoint written when max_steps stopped an epoch early)."""

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())[self.start_at :]
        self.start_at = 0
        return iter(indices)


class ResumableDataLoader(DataLoader):
    """`DataLoader(dataset, batch_size, shuffle, seed)` whose epoch order is reproducible and whose position within the
    epoch is saved in checkpoints. Worker seeds are derived from (seed, epoch), never from the global RNG. ``seed``
    None: the run's seed (Lightning's ``seed_everything``, which the CLI's ``--seed_everything`` calls; else 0).

    Each `iter()` starts the next epoch (a pass is assumed to run to its end: do not combine with
    limit_train_batches), except the first one after `load_state_dict`, which finishes the checkpointed epoch.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int = 1,
        *,
        shuffle: bool = True,
        seed: int | None = None,
        drop_last: bool = False,
        **kwargs: Any,
    ) -> None:
        for taken in ("sampler", "batch_sampler", "generator"):
            if kwargs.get(taken) is not None:
                raise TypeError(f"ResumableDataLoader builds its own {taken}; do not pass one")
            kwargs.pop(taken, None)
        self.seed = seed if seed is not None else int(os.environ.get("PL_GLOBAL_SEED", 0))
        self.epoch = 0
        self.batches_yielded = 0
        self._resume: tuple[int, int] | None = None  # (epoch, batches already trained on)
        sampler = ResumableSampler(dataset, shuffle=shuffle, seed=self.seed, drop_last=drop_last)
        super().__init__(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            drop_last=drop_last,
            generator=torch.Generator(),
            **kwargs,
        )

    def __iter__(self) -> Iterator[Any]:
        if self._resume is not None:
            epoch, skip = self._resume
            self._resume = None
            if skip >= len(self):
                epoch, skip = epoch + 1, 0
        else:
            epoch, skip = (self.epoch + 1 if self.batches_yielded else self.epoch), 0
        sampler: ResumableSampler = self.sampler  # type: ignore[assignment]
        self.epoch = sampler.epoch = epoch
        sampler.start_at = skip * self.batch_size
        self.generator.manual_seed(self.seed * 100_003 + epoch)
        self.batches_yielded = skip
        for batch in super().__iter__():
            self.batches_yielded += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        """The position within the current epoch (batches already handed to the training loop)."""
        return {"epoch": self.epoch, "batches_yielded": self.batches_yielded}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Make the next iteration of the checkpointed epoch start after the batches already trained on."""
        self._resume = (int(state["epoch"]), int(state["batches_yielded"]))
