"""A generative model ready to train: network and processor (or tokenizer) loaded, freezing policy and LoRA applied.

``GenerativeModel(source=...)`` takes YAML-friendly arguments (see :func:`vlforge.common.lm.loading.load_generative`);
``GenerativeModel.from_parts`` takes an already built model and processor. ``weights`` starts from a vlforge
checkpoint: a plain one is loaded before freezing and LoRA (e.g. preference training with LoRA from a full SFT
model), one whose model carries LoRA adapters after LoRA is applied (the same ``lora`` settings it was trained with).
Gradient checkpointing is not set here: it is the one ``gradient_checkpointing: true`` switch of every run config
(:mod:`vlforge.common.grad_checkpointing`).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from vlforge.common.errors import VLForgeError
from vlforge.common.lm.loading import is_lora_checkpoint, load_generative, weights_from
from vlforge.common.lm.policy import FreezePolicy, LoraSettings, apply_freeze_policy, apply_lora, family_of
from vlforge.common.lm.prompts import tokenizer_of


class GenerativeModel:
    """Holds ``model`` (an nn.Module), ``processor`` (or a tokenizer), ``family`` and ``trainable_per_part``."""

    def __init__(self, source: str = "preset:llava_tiny", kind: str = "auto", family: str | None = None,
                 freeze: FreezePolicy | None = None, lora: LoraSettings | None = None, dtype: str = "float32",
                 trust_remote_code: bool = False, load_in_4bit: bool = False, weights: str | None = None) -> None:
        model, processor = load_generative(source, kind, dtype, trust_remote_code, load_in_4bit)
        lora_weights = weights is not None and is_lora_checkpoint(weights)
        if weights is not None and not lora_weights:
            weights_from(weights, model)
        self._setup(model, processor, source, family, freeze or FreezePolicy(), lora)
        if lora_weights:
            if lora is None:
                raise VLForgeError(f"checkpoint {weights} carries LoRA adapters; give the lora settings it was "
                                   "trained with")
            weights_from(weights, self.model)

    @classmethod
    def from_parts(cls, model: nn.Module, processor: Any, freeze: FreezePolicy | None = None,
                   lora: LoraSettings | None = None, name: str = "custom", family: str | None = None) -> Any:
        built = cls.__new__(cls)
        built._setup(model, processor, name, family, freeze or FreezePolicy(), lora)
        return built

    def _setup(self, model: nn.Module, processor: Any, name: str, family: str | None, freeze: FreezePolicy,
               lora: LoraSettings | None) -> None:
        if not callable(getattr(tokenizer_of(processor), "encode", None)):
            raise VLForgeError(f"model {name!r}: the processor has no tokenizer")
        self.name = name
        self.processor = processor
        self.family = family_of(model, family)
        self.trainable_per_part = apply_freeze_policy(model, freeze, self.family)
        self.model = apply_lora(model, lora, self.family) if lora is not None else model
