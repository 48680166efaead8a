"""Freezing policy, LoRA and the gradient-checkpointing switch on the real tiny LLaVA."""

import pytest
import torch

from vlforge.captioner.captioner import Captioner
from vlforge.captioner.collate import CaptionCollator
from vlforge.captioner.lit_sft import model_inputs
from vlforge.captioner.model_setup import FreezePolicy, LoraSettings, part_of
from vlforge.common.errors import VLForgeError
from vlforge.common.grad_checkpointing import enable_gradient_checkpointing
from vlforge.common.presets import build_preset


def test_parts_are_found_by_name():
    assert part_of("model.vision_tower.encoder.layers.0.mlp.fc1.weight") == "vision_tower"
    assert part_of("model.multi_modal_projector.linear_1.weight") == "projector"
    assert part_of("model.language_model.layers.0.self_attn.q_proj.weight") == "llm"
    assert part_of("lm_head.weight") == "llm"
    assert part_of("model.visual.merger.mlp.0.weight") == "projector"  # Qwen2-VL
    assert part_of("model.visual.blocks.0.attn.qkv.weight") == "vision_tower"
    with pytest.raises(VLForgeError, match="mystery.weight"):
        part_of("mystery.weight")


@pytest.mark.parametrize("policy", [FreezePolicy(False, True, True), FreezePolicy(True, False, False),
                                    FreezePolicy(False, False, True)])
def test_freeze_policy_sets_requires_grad_per_part(llava, policy):
    model, processor = llava
    captioner = Captioner.from_parts(model, processor, freeze=policy)
    for name, param in captioner.model.named_parameters():
        assert param.requires_grad == getattr(policy, part_of(name)), name
    for part, count in captioner.trainable_per_part.items():
        assert (count > 0) == getattr(policy, part)


def test_lora_trains_adapters_and_projector_only(llava):
    model, processor = llava
    captioner = Captioner.from_parts(model, processor, freeze=FreezePolicy(False, True, True),
                                     lora=LoraSettings(r=4, alpha=8))
    trainable = [n for n, p in captioner.model.named_parameters() if p.requires_grad]
    assert any("lora_A" in n for n in trainable) and any("multi_modal_projector" in n for n in trainable)
    assert all("lora_" in n or "multi_modal_projector" in n for n in trainable), trainable
    assert not any("vision_tower" in n and "lora_" in n for n in trainable)
    with pytest.raises(VLForgeError, match="match no linear layer"):
        Captioner.from_parts(*build_preset("llava_tiny"), lora=LoraSettings(target_modules=["nonexistent"]))


def test_gradient_checkpointing_gives_the_same_loss_and_gradients(images):
    example = [{"image": images[0], "instruction": "Describe.", "response": "A red circle left of a blue star."}]
    results = []
    for checkpointing in (False, True):
        model, processor = build_preset("llava_tiny")
        captioner = Captioner.from_parts(model, processor)
        if checkpointing:  # the one switch of every run config (``gradient_checkpointing: true``)
            assert enable_gradient_checkpointing(captioner.model) >= 1
        captioner.model.train()
        assert captioner.model.is_activation_checkpointing == checkpointing
        batch = CaptionCollator(processor)(example)
        out = captioner.model(**model_inputs(batch), labels=batch["labels"], use_cache=False)
        out.loss.backward()
        results.append((out.loss.detach(), captioner.model.model.multi_modal_projector.linear_1.weight.grad.clone()))
    torch.testing.assert_close(results[0][0], results[1][0])
    torch.testing.assert_close(results[0][1], results[1][1])
