"""AdamW with linear warm-up then cosine decay to zero (the papers' Tables 4-5 schedule) over trainable weights."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch


def adamw_warmup_cosine(parameters: Iterable[torch.nn.Parameter], lr: float, weight_decay: float,
                        warmup_ratio: float, total_steps: int) -> dict:
    """A Lightning ``configure_optimizers`` dict; the scheduler steps every optimizer step."""
    trainable = [p for p in parameters if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=weight_decay)
    total = max(1, int(total_steps))
    warmup = int(round(warmup_ratio * total))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
