"""Load the causal LM an MLLM is built on: ``preset:<name>`` (a tiny text-LM preset of vlforge.common.presets) or
a local folder / hub name (transformers' ``AutoModelForCausalLM`` + ``AutoTokenizer``).

This is the one place the MLLM builder loads its LM, so that ``vlforge.common.lm``'s loader can take its place.
"""

from __future__ import annotations

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from vlforge.common.errors import VLForgeError
from vlforge.common.presets import build_preset, load_pretrained

PRESET_PREFIX = "preset:"


def load_causal_lm(source: str, trust_remote_code: bool = False, dtype: torch.dtype = torch.float32,
                   ) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """``(causal LM in dtype, tokenizer)`` of ``source``; a preset that is not a text LM is refused with its
    name."""
    if source.startswith(PRESET_PREFIX):
        name = source[len(PRESET_PREFIX):]
        model, tokenizer = build_preset(name)
        if not isinstance(tokenizer, PreTrainedTokenizerBase) or not hasattr(model, "get_output_embeddings"):
            raise VLForgeError(f"lm {source!r}: preset {name!r} is not a text causal LM (it builds "
                               f"{type(model).__name__})")
        return model.to(dtype), tokenizer
    return load_pretrained(source, "causal_lm", trust_remote_code=trust_remote_code, dtype=dtype)
