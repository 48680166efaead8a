"""vlforge.common.lm.policy on real tiny presets: families, freezing (the last k vision layers too), a learning rate
per part, LoRA per family; an MLLM trained with the plain prompt style updates exactly the parameters it should."""

import lightning as L
import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from vlforge.common.errors import VLForgeError
from vlforge.common.lm.lit_sft import SFTLitModule
from vlforge.common.lm.model import GenerativeModel
from vlforge.common.lm.policy import FreezePolicy, LoraSettings, family_of
from vlforge.common.presets import build_preset

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _images(n):
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(n)]


@pytest.mark.parametrize("preset,family,layer", [
    ("llava_tiny", "llava", "model.vision_tower.encoder.layers.{}."),
    ("qwen2_vl_tiny", "qwen2_vl", "model.visual.blocks.{}."),
    ("blip_tiny", "blip", "vision_model.encoder.layers.{}."),
])
def test_only_the_last_k_vision_layers_train(preset, family, layer):
    model, processor = build_preset(preset)
    built = GenerativeModel.from_parts(model, processor, FreezePolicy(vision_tower=True, projector=False,
                                                                      llm=False, vision_tower_last_layers=1))
    assert built.family.name == family
    names = [n for n, _ in model.named_parameters()]
    last = max(int(n.split(layer.split("{}")[0])[1].split(".")[0]) for n in names if layer.split("{}")[0] in n)
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trained and all(n.find(layer.format(last)) >= 0 for n in trained)
    assert trained == {n for n in names if layer.format(last) in n}
    with pytest.raises(VLForgeError, match="exceeds the vision tower's"):
        GenerativeModel.from_parts(*build_preset(preset), FreezePolicy(vision_tower=True,
                                                                       vision_tower_last_layers=99))


def test_llava_stage_two_gradients_and_learning_rates_per_part():
    """LLaVA-1.5 stage-2 style: last vision layer + projector + LLM train, the vision layer at its own lr."""
    model, processor = build_preset("llava_tiny")
    built = GenerativeModel.from_parts(model, processor, FreezePolicy(vision_tower=True, projector=True, llm=True,
                                                                      vision_tower_last_layers=1))
    module = SFTLitModule(built, lr=1e-3, prompt_style="plain", part_lr={"vision_tower": 1e-4})
    images = _images(2)
    examples = [{"image": im, "instruction": "", "response": t} for im, t in zip(images, ["A red circle.",
                                                                                          "A blue star."])]
    trainer = L.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer.fit(module, DataLoader(examples, batch_size=2, collate_fn=list))
    optimizer = trainer.optimizers[0]
    lr_of = {g["name"]: g["initial_lr"] for g in optimizer.param_groups}
    assert lr_of == {"vision_tower/no_decay": 1e-4, "projector/no_decay": 1e-3, "llm/no_decay": 1e-3}
    grouped = {id(p): g["name"].split("/")[0] for g in optimizer.param_groups for p in g["params"]}
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    for name, param in model.named_parameters():
        part = built.family.part_of(name)
        if part == "vision_tower" and ".encoder.layers.1." not in name:
            assert not param.requires_grad and name not in changed, name
        elif param.requires_grad:
            assert grouped[id(param)] == part
    assert any(".encoder.layers.1." in n for n in changed)
    assert any("multi_modal_projector" in n for n in changed) and any("language_model" in n for n in changed)
    assert not any("vision_tower.embeddings" in n or ".encoder.layers.0." in n for n in changed)


def test_plain_prompt_sft_lowers_the_response_loss_on_llava():
    model, processor = build_preset("llava_tiny")
    module = SFTLitModule(GenerativeModel.from_parts(model, processor), lr=3e-3, prompt_style="plain")
    examples = [{"image": im, "instruction": "", "response": t}
                for im, t in zip(_images(2), ["A red circle.", "Two blue squares."])]
    batch = module.on_before_batch_transfer(examples, 0)
    with torch.no_grad():
        before = module.response_nll(batch).item()
    trainer = L.Trainer(max_steps=40, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, DataLoader(examples, batch_size=2, collate_fn=list))
    with torch.no_grad():
        after = module.response_nll(batch).item()
    assert after < 0.5 * before, (before, after)


@pytest.mark.parametrize("preset,targets", [("llava_tiny", {"q_proj", "k_proj", "v_proj", "o_proj"}),
                                            ("blip_tiny", {"query", "key", "value"}),
                                            ("llama_tiny", {"q_proj", "k_proj", "v_proj", "o_proj"}),
                                            ("gpt2_tiny", {"c_attn"})])
def test_lora_goes_on_the_family_llm_layers(preset, targets):
    model, processor = build_preset(preset)
    built = GenerativeModel.from_parts(model, processor, lora=LoraSettings(r=2))
    lora = [n for n, p in built.model.named_parameters() if "lora_" in n]
    assert {n.split(".lora_")[0].rsplit(".", 1)[1] for n in lora} == targets
    assert all(built.family.part_of(n) == "llm" for n in lora)
    trainable = {n for n, p in built.model.named_parameters() if p.requires_grad}
    assert set(lora) <= trainable
    assert not any(built.family.part_of(n) == "llm" and "lora_" not in n for n in trainable)


def test_causal_lm_family_puts_everything_in_the_llm():
    model, _ = build_preset("gpt2_tiny")
    family = family_of(model)
    assert family.name == "causal_lm" and {family.part_of(n) for n, _ in model.named_parameters()} == {"llm"}
    with pytest.raises(VLForgeError, match="needs vision_tower: true"):
        GenerativeModel.from_parts(*build_preset("llava_tiny"), FreezePolicy(vision_tower_last_layers=1))
