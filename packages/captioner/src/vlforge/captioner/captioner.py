"""A captioner: an image-text-to-text model, its processor, and the training policy applied to it.

``Captioner(source=...)`` loads from YAML-friendly arguments: ``preset:<name>`` builds a tiny preset of
vlforge.common.presets (random weights), anything else is a hub name or local path loaded with transformers
(``trust_remote_code`` off unless asked; 4-bit QLoRA through bitsandbytes needs CUDA). ``Captioner.from_parts``
takes an already built model and processor. ``weights`` starts from a trained captioner: the captioner weights of
a captioner LitModule checkpoint (``vlforge.captioner.weights.weights_from``), loaded before freezing and LoRA.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from vlforge.captioner.model_setup import (
    FreezePolicy,
    LoraSettings,
    apply_freeze_policy,
    apply_lora,
    set_gradient_checkpointing,
)
from vlforge.captioner.weights import weights_from
from vlforge.common.errors import VLForgeError
from vlforge.common.extras import require_extra

PRESET_PREFIX = "preset:"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class Captioner:
    """Holds ``model`` (an nn.Module) and ``processor`` with the freezing / LoRA / checkpointing policy applied."""

    def __init__(self, source: str = "preset:llava_tiny", freeze: FreezePolicy | None = None,
                 lora: LoraSettings | None = None, gradient_checkpointing: bool = False, dtype: str = "float32",
                 trust_remote_code: bool = False, load_in_4bit: bool = False, weights: str | None = None) -> None:
        model, processor = _load(source, dtype, trust_remote_code, load_in_4bit)
        if weights is not None:
            weights_from(weights, model)
        self._setup(model, processor, source, freeze or FreezePolicy(), lora, gradient_checkpointing)

    @classmethod
    def from_parts(cls, model: nn.Module, processor: Any, freeze: FreezePolicy | None = None,
                   lora: LoraSettings | None = None, gradient_checkpointing: bool = False,
                   name: str = "custom") -> Captioner:
        captioner = cls.__new__(cls)
        captioner._setup(model, processor, name, freeze or FreezePolicy(), lora, gradient_checkpointing)
        return captioner

    def _setup(self, model: nn.Module, processor: Any, name: str, freeze: FreezePolicy,
               lora: LoraSettings | None, gradient_checkpointing: bool) -> None:
        if getattr(processor, "tokenizer", None) is None:
            raise VLForgeError(f"captioner {name!r}: the processor has no tokenizer")
        self.name = name
        self.processor = processor
        self.trainable_per_part = apply_freeze_policy(model, freeze)
        set_gradient_checkpointing(model, gradient_checkpointing)
        self.model = apply_lora(model, lora) if lora is not None else model


def _load(source: str, dtype: str, trust_remote_code: bool, load_in_4bit: bool) -> tuple[nn.Module, Any]:
    if dtype not in DTYPES:
        raise VLForgeError(f"captioner dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    if source.startswith(PRESET_PREFIX):
        from vlforge.common.presets import build_preset

        model, processor = build_preset(source[len(PRESET_PREFIX):])
        return model.to(DTYPES[dtype]), processor
    from transformers import AutoModelForImageTextToText, AutoProcessor

    kwargs: dict[str, Any] = {"dtype": DTYPES[dtype], "trust_remote_code": trust_remote_code}
    if load_in_4bit:
        if not torch.cuda.is_available():
            raise VLForgeError(f"captioner {source!r}: load_in_4bit (QLoRA) needs a CUDA GPU and bitsandbytes")
        require_extra("bitsandbytes", f"captioner {source!r} with load_in_4bit (QLoRA)")
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                           bnb_4bit_compute_dtype=DTYPES[dtype])
    try:
        model = AutoModelForImageTextToText.from_pretrained(source, **kwargs)
        processor = AutoProcessor.from_pretrained(source, trust_remote_code=trust_remote_code)
    except OSError as err:
        raise VLForgeError(f"captioner {source!r} could not be loaded: {str(err).splitlines()[0]}") from err
    return model, processor
