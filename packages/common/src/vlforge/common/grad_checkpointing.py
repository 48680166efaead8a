"""The gradient-checkpointing switch shared by every vlforge model (`gradient_checkpointing: true` in a config)."""

from __future__ import annotations

from torch import nn

from vlforge.common.errors import VLForgeError


def enable_gradient_checkpointing(model: nn.Module) -> int:
    """Turn on activation checkpointing in `model` and return how many submodules took it.

    A module may decide for itself by defining `enable_gradient_checkpointing()`; otherwise every transformers
    `PreTrainedModel` inside (`activation_checkpointing_enable`; `gradient_checkpointing_enable` before
    transformers 5) and every open_clip / timm tower (`set_grad_checkpointing`) is switched on. A model with none
    of these is a config mistake.
    """
    own_hook = getattr(type(model), "enable_gradient_checkpointing", None)
    if callable(own_hook):
        model.enable_gradient_checkpointing()
        return 1
    enabled = 0
    for module in model.modules():
        if callable(getattr(module, "activation_checkpointing_enable", None)):  # transformers >= 5
            if getattr(module, "supports_gradient_checkpointing", False):
                module.activation_checkpointing_enable(
                    activation_checkpointing_kwargs={"use_reentrant": False}
                )
                enabled += 1
        elif callable(getattr(module, "gradient_checkpointing_enable", None)):  # transformers 4
            if getattr(module, "supports_gradient_checkpointing", False):
                module.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
                enabled += 1
        elif callable(getattr(module, "set_grad_checkpointing", None)):
            module.set_grad_checkpointing(True)
            enabled += 1
    if enabled == 0:
        raise VLForgeError(
            f"gradient_checkpointing: {type(model).__name__} has no submodule that supports it "
            "(a transformers PreTrainedModel, an open_clip/timm tower, or an "
            "enable_gradient_checkpointing() method)"
        )
    return enabled
