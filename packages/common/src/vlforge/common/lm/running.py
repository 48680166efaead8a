"""A running mean over every value seen so far on all processes (the BCO reward shift δ; later PPO's adaptive KL).

mean_t = (Σ values of updates < t) / (their number), summed over every rank with an all-reduce so that all processes
hold the same mean. The sum and count are float64 and go into checkpoints through ``state_dict`` /
``load_state_dict``.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from vlforge.common.errors import VLForgeError


class RunningMean:
    """Cross-rank running mean; ``value`` is 0 before the first update."""

    def __init__(self) -> None:
        self.total = 0.0
        self.count = 0

    @property
    def value(self) -> float:
        return self.total / self.count if self.count else 0.0

    def update(self, *values: torch.Tensor) -> float:
        """Add this step's values (any shapes) from every process; returns the new mean."""
        flat = torch.cat([v.detach().reshape(-1).to(torch.float64) for v in values])
        stats = torch.stack([flat.sum(), torch.tensor(float(flat.numel()), dtype=torch.float64, device=flat.device)])
        if dist.is_available() and dist.is_initialized():
            if dist.get_backend() == "nccl" and stats.device.type != "cuda":
                stats = stats.cuda()
            dist.all_reduce(stats, op=dist.ReduceOp.SUM)
        self.total += float(stats[0])
        self.count += int(stats[1])
        return self.value

    def state_dict(self) -> dict[str, float | int]:
        return {"total": self.total, "count": self.count}

    def load_state_dict(self, state: dict[str, float | int]) -> None:
        missing = {"total", "count"} - set(state)
        if missing:
            raise VLForgeError(f"running-mean state lacks keys {sorted(missing)}")
        self.total = float(state["total"])
        self.count = int(state["count"])
