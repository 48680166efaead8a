"""The process group seen from one process (no Lightning: plain torch.distributed).

``world()`` is the one reader of (rank, world_size). The gathers keep the autograd graph
(``torch.distributed.nn.all_gather``): the backward pass sums, on each process, the gradients every process's loss
sends to that process's local features — the same gradients as one process holding the global batch (up to the
world-size factor that DDP's gradient averaging removes).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.distributed.nn as dist_nn


def world() -> tuple[int, int]:
    """(rank, world_size) of the default process group, or (0, 1) when none is initialised."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def release_process_group() -> None:
    """Destroy the default process group, if one is initialised, before the interpreter exits.

    Lightning destroys it at exit only for NCCL. A gloo group left to interpreter shutdown has its worker threads torn
    down in no fixed order, which can abort a process whose fit succeeded ("terminate called without an active
    exception", exit status -6): seen about once in five 2-process CPU fits."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def row_counts(features: torch.Tensor) -> list[int]:
    """Every rank's number of rows of ``features`` (one small all-gather), in rank order."""
    world_size = world()[1]
    if world_size == 1:
        return [features.shape[0]]
    count = torch.tensor([features.shape[0]], device=features.device)
    counts = [torch.zeros_like(count) for _ in range(world_size)]
    dist.all_gather(counts, count)
    return [int(c) for c in counts]


def gather_rows_with_grad(features: torch.Tensor, counts: list[int] | None = None) -> tuple[torch.Tensor, int]:
    """All ranks' ``features`` concatenated in rank order, differentiable, and the row offset of this rank's rows.

    Ranks may hold different numbers of rows, zero included (a batch whose images were all skipped): the row
    counts are exchanged first (pass ``counts`` from :func:`row_counts` when they are already known, e.g. texts
    paired one to one with images) and every rank pads to the longest before the gather.
    """
    rank, world_size = world()
    if world_size == 1:
        return features, 0
    counts = counts if counts is not None else row_counts(features)
    longest = max(counts)
    padding = features.new_zeros((longest - features.shape[0], *features.shape[1:]))
    gathered = dist_nn.all_gather(torch.cat([features, padding], dim=0).contiguous())
    return torch.cat([g[:n] for g, n in zip(gathered, counts, strict=True)], dim=0), sum(counts[:rank])


def gather_variable_with_grad(features: torch.Tensor) -> torch.Tensor:
    """Like ``gather_rows_with_grad`` without the offset (e.g. hard negatives)."""
    return gather_rows_with_grad(features)[0]
