"""Freezing policy and LoRA: moved to :mod:`vlforge.common.lm.policy` (the captioner's names kept). Gradient
checkpointing is the one ``gradient_checkpointing: true`` switch of a run config
(:func:`vlforge.common.grad_checkpointing.enable_gradient_checkpointing`)."""

from vlforge.common.lm.policy import PARTS, FreezePolicy, LoraSettings, apply_freeze_policy, apply_lora, part_of

__all__ = ["PARTS", "FreezePolicy", "LoraSettings", "apply_freeze_policy", "apply_lora", "part_of"]
