"""The one optimizer recipe of every vlforge LitModule: AdamW over parameter groups, linear warm-up then cosine.

Parameter groups: weight decay applies to matrices only — biases, norm weights (every parameter with fewer than two
dimensions) and logit scales/biases (``logit_`` in the name) get none (CLIP / open_clip's rule). Parameters can also
be sorted into named parts (e.g. ``vision_tower`` / ``projector`` / ``llm`` of ``vlforge.common.lm.policy``), each
with its own learning rate (LLaVA-1.5 stage 2 trains the vision tower slower than the LLM).

Schedule (open_clip's ``cosine_lr``), for step s, W warm-up steps and S total steps, as a factor of each group's lr:

    f(s) = (s + 1) / W                                   for s < W
    f(s) = ½ · (1 + cos(π · min(1, (s − W) / max(1, S − W))))   otherwise

``warmup_ratio`` (the papers' Tables 4-5: a fraction of the run) gives W = round(warmup_ratio · S); ``warmup_steps``
gives W directly; at most one of them is non-zero.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch

from vlforge.common.errors import VLForgeError


def no_weight_decay(name: str, parameter: torch.nn.Parameter) -> bool:
    """True for biases, norm weights and logit scales (no weight decay on them)."""
    return parameter.ndim < 2 or "logit_" in name


def parameter_groups(named_parameters: Iterable[tuple[str, torch.nn.Parameter]], lr: float, weight_decay: float,
                     part_of: Callable[[str], str] | None = None,
                     part_lr: dict[str, float] | None = None) -> list[dict]:
    """AdamW groups of the trainable parameters: one per (part, decay or not), each with ``lr`` and ``name``.

    ``part_of(name)`` names a parameter's part (default: every parameter is part "all"); ``part_lr`` overrides the
    learning rate of the parts it names (an unknown part name is an error)."""
    part_lr = dict(part_lr or {})
    groups: dict[tuple[str, bool], dict] = {}
    for name, parameter in named_parameters:
        if not parameter.requires_grad:
            continue
        part = part_of(name) if part_of is not None else "all"
        decay = weight_decay > 0 and not no_weight_decay(name, parameter)
        group = groups.setdefault((part, decay), {
            "params": [], "name": f"{part}/{'decay' if decay else 'no_decay'}", "lr": part_lr.get(part, lr),
            "weight_decay": weight_decay if decay else 0.0})
        group["params"].append(parameter)
    unknown = sorted(set(part_lr) - {part for part, _ in groups})
    if unknown:
        raise VLForgeError(f"part_lr names part {unknown[0]!r}, which has no trainable parameter "
                           f"(trainable parts: {', '.join(sorted({p for p, _ in groups})) or 'none'})")
    if not groups:
        raise VLForgeError("no trainable parameters: the freezing policy froze everything")
    return list(groups.values())


def warmup_steps_of(total_steps: int, warmup_steps: int = 0, warmup_ratio: float = 0.0) -> int:
    """W from either ``warmup_steps`` or ``warmup_ratio`` of ``total_steps``."""
    if warmup_steps and warmup_ratio:
        raise VLForgeError(f"give warmup_steps ({warmup_steps}) or warmup_ratio ({warmup_ratio}), not both")
    if warmup_steps < 0 or not 0.0 <= warmup_ratio <= 1.0:
        raise VLForgeError(f"warmup_steps must be >= 0 and warmup_ratio in [0, 1], got {warmup_steps}, "
                           f"{warmup_ratio}")
    return int(warmup_steps) if warmup_steps else int(round(warmup_ratio * max(1, int(total_steps))))


def warmup_cosine(step: int, warmup: int, total_steps: int) -> float:
    """f(step) of the module docstring."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, int(total_steps) - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def adamw_warmup_cosine(named_parameters: Iterable[tuple[str, torch.nn.Parameter]], lr: float, total_steps: int,
                        weight_decay: float = 0.0, warmup_steps: int = 0, warmup_ratio: float = 0.0,
                        betas: tuple[float, float] = (0.9, 0.999), part_of: Callable[[str], str] | None = None,
                        part_lr: dict[str, float] | None = None) -> dict:
    """A Lightning ``configure_optimizers`` dict (the scheduler steps every optimizer step)."""
    groups = parameter_groups(named_parameters, lr, weight_decay, part_of, part_lr)
    optimizer = torch.optim.AdamW(groups, lr=lr, betas=tuple(betas))
    total = max(1, int(total_steps))
    warmup = warmup_steps_of(total, warmup_steps, warmup_ratio)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: warmup_cosine(step, warmup, total))
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
