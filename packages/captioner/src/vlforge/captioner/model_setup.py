"""What of an image-text-to-text model trains: freezing policy (vision tower / projector / LLM), LoRA, checkpointing.

Parameters are sorted into the three parts by name, which covers transformers' LLaVA (``vision_tower``,
``multi_modal_projector``, ``language_model`` + ``lm_head``), Qwen2-VL (``visual`` with its ``visual.merger``
projector, ``language_model`` + ``lm_head``) and alike. A parameter that fits no part is an error, never silently
frozen or trained.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from vlforge.common.errors import VLForgeError

PROJECTOR_MARKERS = ("multi_modal_projector", "visual.merger", "mm_projector", "vision_projection")
VISION_MARKERS = ("vision_tower", "visual", "vision_model")
LLM_MARKERS = ("language_model", "lm_head", "text_model", "text_decoder")
PARTS = ("vision_tower", "projector", "llm")


@dataclass
class FreezePolicy:
    """Which parts train (True) and which stay frozen (False). Default: the paper's "Trainable Module: LLM" plus
    the projector."""

    vision_tower: bool = False
    projector: bool = True
    llm: bool = True


@dataclass
class LoraSettings:
    """LoRA adapters (peft) on the LLM's linear layers named in ``target_modules``; the LLM's base weights freeze."""

    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])


def part_of(parameter_name: str) -> str:
    """The part ('vision_tower', 'projector' or 'llm') a parameter belongs to, from its dotted name."""
    parts = parameter_name.split(".")
    dotted = f".{parameter_name}."
    if any(f".{m}." in dotted for m in PROJECTOR_MARKERS):
        return "projector"
    if any(m in parts for m in VISION_MARKERS):
        return "vision_tower"
    if any(m in parts for m in LLM_MARKERS):
        return "llm"
    raise VLForgeError(f"parameter {parameter_name!r} is in none of vision tower / projector / LLM; "
                       "the freezing policy cannot place it")


def apply_freeze_policy(model: nn.Module, policy: FreezePolicy) -> dict[str, int]:
    """Set ``requires_grad`` per part; returns the number of trainable parameters per part."""
    trainable = dict.fromkeys(PARTS, 0)
    for name, param in model.named_parameters():
        part = part_of(name)
        param.requires_grad_(getattr(policy, part))
        if param.requires_grad:
            trainable[part] += param.numel()
    return trainable


def apply_lora(model: nn.Module, settings: LoraSettings) -> nn.Module:
    """Wrap ``model`` with peft LoRA adapters on the LLM's linear layers; the LLM's own weights freeze, and parts
    outside the LLM that the freezing policy trains (e.g. the projector) keep training in full."""
    from peft import LoraConfig, get_peft_model

    still_trainable = {n for n, p in model.named_parameters() if p.requires_grad and part_of(n) != "llm"}
    targets = "|".join(settings.target_modules)
    config = LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                        target_modules=rf".*language_model.*\.({targets})")
    try:
        wrapped = get_peft_model(model, config)
    except ValueError as err:  # peft's NoMatchingPeftModuleError is a ValueError
        raise VLForgeError(f"LoRA target_modules {settings.target_modules} match no linear layer of the LLM") from err
    for name, param in wrapped.named_parameters():
        if any(name.endswith(n) for n in still_trainable):
            param.requires_grad_(True)
    return wrapped


def set_gradient_checkpointing(model: nn.Module, enabled: bool) -> None:
    """Switch activation checkpointing of a transformers model on or off (non-reentrant, no KV cache in training)."""
    if enabled:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    elif getattr(model, "is_activation_checkpointing", False):
        model.activation_checkpointing_disable()
