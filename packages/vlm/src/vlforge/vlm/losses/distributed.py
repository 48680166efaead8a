"""Cross-process feature gathering for contrastive losses (no Lightning: plain torch.distributed).

Gathering keeps the autograd graph (``torch.distributed.nn.all_gather``): the backward pass sums, on each
process, the gradients every process's loss sends to that process's local features — the same gradients as one
process holding the global batch (up to the world-size factor that DDP's gradient averaging removes).
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


def gather_with_grad(features: torch.Tensor) -> torch.Tensor:
    """All ranks' ``features`` concatenated in rank order, differentiable; every rank must pass the same shape."""
    if world()[1] == 1:
        return features
    return torch.cat(dist_nn.all_gather(features.contiguous()), dim=0)


def gather_variable_with_grad(features: torch.Tensor) -> torch.Tensor:
    """Like ``gather_with_grad`` but ranks may hold different numbers of rows (e.g. hard negatives)."""
    world_size = world()[1]
    if world_size == 1:
        return features
    count = torch.tensor([features.shape[0]], device=features.device)
    counts = [torch.zeros_like(count) for _ in range(world_size)]
    dist.all_gather(counts, count)
    counts = [int(c) for c in counts]
    longest = max(counts)
    padding = features.new_zeros((longest - features.shape[0], *features.shape[1:]))
    gathered = dist_nn.all_gather(torch.cat([features, padding], dim=0).contiguous())
    return torch.cat([g[:n] for g, n in zip(gathered, counts, strict=True)], dim=0)
