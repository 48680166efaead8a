"""One loader for generative models: a tiny preset, a hub name or a local folder; image-text-to-text models (with
their processor) and causal LMs (with their tokenizer) alike.

- ``preset:<name>`` builds a tiny preset of :mod:`vlforge.common.presets` (random weights, ``preset_seed`` re-seeds);
- anything else goes through transformers' ``from_pretrained`` (:func:`vlforge.common.presets.load_pretrained`):
  ``kind="auto"`` reads the folder's config and picks image-text-to-text or causal LM; ``trust_remote_code`` stays
  off unless a config turns it on; ``load_in_4bit`` (QLoRA) imports bitsandbytes' config lazily and needs CUDA.
- :func:`weights_from` loads the network weights of a vlforge LitModule checkpoint (``model.*`` entries, read with
  ``torch.load(weights_only=True)``) into a model of the same architecture — LoRA-wrapped or plain;
- :func:`save_pretrained` writes a model (LoRA merged into its base weights) and its processor as a transformers
  folder, which loads back with ``load_generative(folder)``, i.e. with ``from_pretrained`` semantics.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vlforge.common.atomic_file import atomic_folder
from vlforge.common.checkpoint import read_checkpoint_state_dict
from vlforge.common.errors import VLForgeError
from vlforge.common.extras import require_extra

PRESET_PREFIX = "preset:"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
KINDS = ("auto", "image_text_to_text", "causal_lm")
MODEL_PREFIX = "model."


def dtype_of(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise VLForgeError(f"dtype {name!r} is not one of {', '.join(DTYPES)}")
    return DTYPES[name]


def kind_of(source: str, trust_remote_code: bool = False) -> str:
    """'image_text_to_text' or 'causal_lm' for a hub name or local folder, from its config's model type."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES,
    )

    if source.startswith(("/", "./", "../", "~")) and not os.path.isdir(os.path.expanduser(source)):
        raise VLForgeError(f"cannot load {source!r}: no such directory")
    try:
        model_type = AutoConfig.from_pretrained(os.path.expanduser(source),
                                                trust_remote_code=trust_remote_code).model_type
    except (OSError, ValueError) as err:
        raise VLForgeError(f"cannot load {source!r}: {(str(err).strip().splitlines() or ['no config'])[0]}") from None
    if model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES:
        return "image_text_to_text"
    if model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return "causal_lm"
    raise VLForgeError(f"{source!r}: model type {model_type!r} is neither image-text-to-text nor a causal LM")


def load_generative(source: str, kind: str = "auto", dtype: str = "float32", trust_remote_code: bool = False,
                    load_in_4bit: bool = False, preset_seed: int | None = None) -> tuple[nn.Module, Any]:
    """``(model, processor_or_tokenizer)`` of ``source`` (see the module docstring)."""
    if kind not in KINDS:
        raise VLForgeError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    torch_dtype = dtype_of(dtype)
    if source.startswith(PRESET_PREFIX):
        from vlforge.common.presets import build_preset

        model, processor = build_preset(source[len(PRESET_PREFIX):], seed=preset_seed)
        return model.to(torch_dtype), processor
    if preset_seed is not None:
        raise VLForgeError(f"{source!r}: preset_seed applies to preset sources only")
    from vlforge.common.presets import load_pretrained

    kwargs: dict[str, Any] = {"dtype": torch_dtype}
    if load_in_4bit:
        if not torch.cuda.is_available():
            raise VLForgeError(f"{source!r}: load_in_4bit (QLoRA) needs a CUDA GPU and bitsandbytes")
        require_extra("bitsandbytes", f"{source!r} with load_in_4bit (QLoRA)")
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                           bnb_4bit_compute_dtype=torch_dtype)
    resolved = kind if kind != "auto" else kind_of(source, trust_remote_code)
    return load_pretrained(source, resolved, trust_remote_code=trust_remote_code, **kwargs)


def weights_from(checkpoint: str | os.PathLike, model: nn.Module, prefix: str = MODEL_PREFIX) -> nn.Module:
    """Load the ``prefix``-ed weights of LitModule ``checkpoint`` into ``model`` (same architecture, LoRA wrapping
    included; every weight must match by name and shape) and return ``model``. A preference checkpoint's frozen
    ``reference_model.*`` copy is not the policy and is ignored."""
    state = read_checkpoint_state_dict(checkpoint)
    weights = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    where = os.fspath(checkpoint)
    if not weights:
        raise VLForgeError(f"checkpoint {where}: no model weights (no '{prefix}*' entries in its state_dict)")
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        name, what = (missing[0], "lacks") if missing else (unexpected[0], "has an unexpected")
        raise VLForgeError(f"checkpoint {where} {what} weight {name!r} ({len(missing)} missing, "
                           f"{len(unexpected)} unexpected): not this model's architecture (or LoRA settings)")
    for name, value in weights.items():
        if value.shape != expected[name].shape:
            raise VLForgeError(f"checkpoint {where}: weight {name!r} has shape {tuple(value.shape)}, "
                               f"the model expects {tuple(expected[name].shape)}")
    model.load_state_dict(weights)
    return model


def is_lora_checkpoint(checkpoint: str | os.PathLike, prefix: str = MODEL_PREFIX) -> bool:
    """True when the checkpoint's model weights carry LoRA adapters (a peft-wrapped model was trained)."""
    return any(k.startswith(prefix) and ".lora_" in k for k in read_checkpoint_state_dict(checkpoint))


def save_pretrained(model: nn.Module, processor: Any, folder: str | os.PathLike,
                    inputs: Sequence[str | os.PathLike] = ()) -> Path:
    """Write ``model`` (LoRA adapters merged into a copy of the base weights) and ``processor`` as a transformers
    folder, atomically and never onto one of ``inputs`` (``common.atomic_file.atomic_folder``);
    ``load_generative(folder)`` loads it back."""
    import copy

    if hasattr(model, "merge_and_unload"):  # a peft model
        model = copy.deepcopy(model).merge_and_unload()
    with atomic_folder(folder, inputs) as out:
        model.save_pretrained(out)
        processor.save_pretrained(out)
    return Path(folder)
