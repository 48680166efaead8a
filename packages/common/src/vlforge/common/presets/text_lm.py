"""Tiny text-only causal LMs — transformers' ``LlamaForCausalLM`` and ``GPT2LMHeadModel`` — on the ShapesWorld BPE,
random init. The tokenizer carries the USER/ASSISTANT chat template (text parts only)."""

from __future__ import annotations

from typing import Any

from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from vlforge.common.presets.chat_templates import chat_template
from vlforge.common.presets.config_fields import make_config


def _special_ids(tokenizer: PreTrainedTokenizerFast) -> dict[str, int]:
    return {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}


def _finish(model, tokenizer: PreTrainedTokenizerFast):
    for name in ("pad_token_id", "bos_token_id", "eos_token_id"):
        setattr(model.generation_config, name, getattr(tokenizer, name))
    tokenizer.chat_template = chat_template("")
    return model, tokenizer


def build_llama(tokenizer: PreTrainedTokenizerFast, **config: Any) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast]:
    """A randomly initialised ``LlamaForCausalLM``; ``config``: ``LlamaConfig`` fields (hidden_size, ...)."""
    return _finish(LlamaForCausalLM(make_config(LlamaConfig, "model", config, **_special_ids(tokenizer))), tokenizer)


def build_gpt2(tokenizer: PreTrainedTokenizerFast, **config: Any) -> tuple[GPT2LMHeadModel, PreTrainedTokenizerFast]:
    """A randomly initialised ``GPT2LMHeadModel``; ``config``: ``GPT2Config`` fields (n_embd, n_layer, ...)."""
    return _finish(GPT2LMHeadModel(make_config(GPT2Config, "model", config, **_special_ids(tokenizer))), tokenizer)
