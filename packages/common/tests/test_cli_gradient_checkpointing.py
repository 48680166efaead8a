"""The gradient-checkpointing switch on real tiny architectures (a transformers GPT-2 inside a plain module)."""

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from vlforge.common.errors import VLForgeError
from vlforge.common.grad_checkpointing import enable_gradient_checkpointing


class Wrapper(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lm = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=50, n_positions=16))


def test_transformers_model_inside_a_module_is_switched_on() -> None:
    model = Wrapper()
    assert not model.lm.is_activation_checkpointing
    assert enable_gradient_checkpointing(model) >= 1
    assert model.lm.is_activation_checkpointing
    model.train()
    out = model.lm(torch.randint(0, 50, (2, 8)), labels=torch.randint(0, 50, (2, 8)))
    out.loss.backward()
    assert model.lm.transformer.h[0].attn.c_attn.weight.grad is not None


def test_module_without_support_is_a_config_error() -> None:
    with pytest.raises(VLForgeError, match="gradient_checkpointing: Linear has no submodule"):
        enable_gradient_checkpointing(torch.nn.Linear(2, 2))
