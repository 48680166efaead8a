"""What of a generative model trains: its parts by model family, the freezing policy, and LoRA.

A family is data (:class:`Family`): how parameter names map to the three parts ``vision_tower`` / ``projector`` /
``llm``, how the vision tower's transformer layers are numbered (for unfreezing only its last k layers, as
LLaVA-1.5's stage 2 trains the last 12 ViT layers), and where LoRA goes (a regex over module names, with the family's
default target layers). Shipped families: transformers' LLaVA (``vision_tower``, ``multi_modal_projector``,
``language_model`` + ``lm_head``), Qwen2-VL (``visual`` with its ``visual.merger`` projector), BLIP
(``vision_model``, ``text_decoder``; no projector) and ``causal_lm`` (GPT-2, Llama, ...: everything is ``llm``).
A multimodal model of another type falls back to ``mllm`` (the union of the markers). A parameter that fits no part
is an error, never silently frozen or trained.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from torch import nn

from vlforge.common.errors import VLForgeError

PARTS = ("vision_tower", "projector", "llm")


@dataclass(frozen=True)
class Family:
    """How one model family's parameter names map to parts, vision layers and LoRA targets."""

    name: str
    projector: tuple[str, ...] = ()   # dotted name segments (may contain dots) marking the projector
    vision: tuple[str, ...] = ()      # name segments marking the vision tower
    llm: tuple[str, ...] = ()         # name segments marking the LLM; empty: everything else is the LLM
    vision_layer: str | None = None   # regex whose group 1 is a vision-tower layer's index
    lora_scope: str = ""              # regex prefix of the module names LoRA may wrap
    lora_targets: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")

    def part_of(self, parameter_name: str) -> str:
        """The part ('vision_tower', 'projector' or 'llm') a parameter belongs to, from its dotted name."""
        segments = parameter_name.split(".")
        dotted = f".{parameter_name}."
        if any(f".{m}." in dotted for m in self.projector):
            return "projector"
        if any(m in segments for m in self.vision):
            return "vision_tower"
        if not self.llm or any(m in segments for m in self.llm):
            return "llm"
        raise VLForgeError(f"parameter {parameter_name!r} is in none of vision tower / projector / LLM of family "
                           f"{self.name!r}; the freezing policy cannot place it")

    def vision_layer_of(self, parameter_name: str) -> int | None:
        """The vision-tower layer index of a parameter, or None outside the numbered layers."""
        found = re.search(self.vision_layer, parameter_name) if self.vision_layer else None
        return int(found.group(1)) if found else None


_LLM = ("language_model", "lm_head", "text_model", "text_decoder")
FAMILIES: dict[str, Family] = {
    "llava": Family("llava", projector=("multi_modal_projector",), vision=("vision_tower",), llm=_LLM,
                    vision_layer=r"vision_tower\.(?:vision_model\.)?encoder\.layers\.(\d+)\.",
                    lora_scope=r".*language_model.*\."),
    "qwen2_vl": Family("qwen2_vl", projector=("visual.merger",), vision=("visual",), llm=_LLM,
                       vision_layer=r"visual\.blocks\.(\d+)\.", lora_scope=r".*language_model.*\."),
    "blip": Family("blip", vision=("vision_model",), llm=("text_decoder",),
                   vision_layer=r"vision_model\.encoder\.layers\.(\d+)\.", lora_scope=r".*text_decoder.*\.",
                   lora_targets=("query", "key", "value")),
    "causal_lm": Family("causal_lm", lora_scope=r".*\."),
    "mllm": Family("mllm", projector=("multi_modal_projector", "visual.merger", "mm_projector", "vision_projection"),
                   vision=("vision_tower", "visual", "vision_model"), llm=_LLM,
                   vision_layer=r"(?:vision_tower|visual|vision_model)\.(?:vision_model\.)?(?:encoder\.layers|blocks)"
                                r"\.(\d+)\.", lora_scope=r".*language_model.*\."),
}
MODEL_TYPE_FAMILIES = {"llava": "llava", "qwen2_vl": "qwen2_vl", "qwen2_5_vl": "qwen2_vl", "blip": "blip"}
CAUSAL_LM_TARGETS = {"gpt2": ("c_attn",)}  # GPT-2's fused attention projection (a Conv1D)


def family_of(model: nn.Module, name: str | None = None) -> Family:
    """The model's family: ``name`` when given, else from ``config.model_type``; a model with no vision part is a
    causal LM, any other multimodal model gets the generic ``mllm`` family."""
    if name is not None:
        if name not in FAMILIES:
            raise VLForgeError(f"model family {name!r} is not one of {', '.join(FAMILIES)}")
        return FAMILIES[name]
    config = getattr(model, "config", None)
    model_type = str(getattr(config, "model_type", ""))
    if model_type in MODEL_TYPE_FAMILIES:
        return FAMILIES[MODEL_TYPE_FAMILIES[model_type]]
    if getattr(config, "vision_config", None) is None:
        causal = FAMILIES["causal_lm"]
        targets = CAUSAL_LM_TARGETS.get(model_type)
        return Family(causal.name, lora_scope=causal.lora_scope, lora_targets=targets) if targets else causal
    return FAMILIES["mllm"]


def part_of(parameter_name: str) -> str:
    """The part of a parameter under the generic multimodal markers (``family_of(model).part_of`` knows more)."""
    return FAMILIES["mllm"].part_of(parameter_name)


@dataclass
class FreezePolicy:
    """Which parts train (True) and which stay frozen (False). Default: the paper's "Trainable Module: LLM" plus
    the projector. ``vision_tower_last_layers: k`` trains only the vision tower's last k layers (needs
    ``vision_tower: true``; its embeddings and every earlier layer stay frozen)."""

    vision_tower: bool = False
    projector: bool = True
    llm: bool = True
    vision_tower_last_layers: int | None = None


@dataclass
class LoraSettings:
    """LoRA adapters (peft) on the LLM's linear layers named in ``target_modules`` (None: the family's default);
    the LLM's base weights freeze."""

    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] | None = None


def apply_freeze_policy(model: nn.Module, policy: FreezePolicy, family: Family | None = None) -> dict[str, int]:
    """Set ``requires_grad`` per part; returns the number of trainable parameters per part."""
    family = family or family_of(model)
    keep_from = _first_trained_vision_layer(model, policy, family)
    trainable = dict.fromkeys(PARTS, 0)
    for name, param in model.named_parameters():
        part = family.part_of(name)
        trains = getattr(policy, part)
        if part == "vision_tower" and trains and keep_from is not None:
            layer = family.vision_layer_of(name)
            trains = layer is not None and layer >= keep_from
        param.requires_grad_(trains)
        if trains:
            trainable[part] += param.numel()
    return trainable


def _first_trained_vision_layer(model: nn.Module, policy: FreezePolicy, family: Family) -> int | None:
    k = policy.vision_tower_last_layers
    if k is None:
        return None
    if not policy.vision_tower or k < 1:
        raise VLForgeError(f"vision_tower_last_layers: {k} needs vision_tower: true and k >= 1")
    layers = {family.vision_layer_of(n) for n, _ in model.named_parameters()} - {None}
    if not layers:
        raise VLForgeError(f"vision_tower_last_layers: family {family.name!r} has no numbered vision layers")
    if k > len(layers):
        raise VLForgeError(f"vision_tower_last_layers: {k} exceeds the vision tower's {len(layers)} layers")
    return max(layers) + 1 - k


def apply_lora(model: nn.Module, settings: LoraSettings, family: Family | None = None) -> nn.Module:
    """Wrap ``model`` with peft LoRA adapters on the LLM's linear layers; the LLM's own weights freeze, and parts
    outside the LLM that the freezing policy trains (e.g. the projector) keep training in full."""
    from peft import LoraConfig, get_peft_model

    family = family or family_of(model)
    still_trainable = {n for n, p in model.named_parameters() if p.requires_grad and family.part_of(n) != "llm"}
    target_modules = list(settings.target_modules or family.lora_targets)
    config = LoraConfig(r=settings.r, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
                        target_modules=rf"{family.lora_scope}({'|'.join(target_modules)})",
                        fan_in_fan_out=family.name == "causal_lm" and "c_attn" in target_modules)
    try:
        wrapped = get_peft_model(model, config)
    except ValueError as err:  # peft's NoMatchingPeftModuleError is a ValueError
        raise VLForgeError(f"LoRA target_modules {target_modules} match no linear layer of the LLM") from err
    for name, param in wrapped.named_parameters():
        if any(name.endswith(n) for n in still_trainable):
            param.requires_grad_(True)
    return wrapped


__all__ = ["FAMILIES", "PARTS", "Family", "FreezePolicy", "LoraSettings", "apply_freeze_policy", "apply_lora",
           "family_of", "part_of"]
