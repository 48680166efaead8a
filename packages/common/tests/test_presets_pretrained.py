"""load_pretrained: the real MiniLM by local path, a saved tiny preset back through from_pretrained, bad sources."""

import numpy as np
import pytest
import torch
from PIL import Image

from vlforge.common.errors import VLForgeError
from vlforge.common.presets import build_preset, load_pretrained, minilm_model_dir


def _embed(model, tokenizer, texts):
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    pooled = (hidden * mask).sum(1) / mask.sum(1)  # sentence-transformers mean pooling
    return torch.nn.functional.normalize(pooled, dim=-1)


def test_minilm_by_local_path_is_the_pretrained_model(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, tokenizer = load_pretrained(minilm_model_dir(), "text_encoder")
    assert type(model).__name__ == "BertModel" and model.config.num_hidden_layers == 6
    e = _embed(model, tokenizer, ["a red circle on a white background", "a crimson disc on white",
                                  "quarterly tax report for shareholders"])
    # pretrained weights: the paraphrase is much closer than the unrelated sentence (random weights give ~equal)
    assert e[0] @ e[1] > e[0] @ e[2] + 0.3


def test_saved_preset_round_trips_through_from_pretrained(tmp_path):
    model, processor = build_preset("llava_tiny")
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    loaded, loaded_processor = load_pretrained(tmp_path, "image_text_to_text")
    assert type(loaded) is type(model) and type(loaded_processor) is type(processor)
    conversation = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe."}]}]
    prompt = loaded_processor.apply_chat_template([conversation], add_generation_prompt=True)
    assert prompt == processor.apply_chat_template([conversation], add_generation_prompt=True)
    image = Image.fromarray(np.full((64, 64, 3), 200, dtype=np.uint8))
    inputs = loaded_processor(images=[image], text=prompt, return_tensors="pt")
    with torch.no_grad():
        assert torch.allclose(model(**inputs).logits, loaded(**inputs).logits, atol=1e-6)


def test_blip_keeps_its_chat_template_after_reload(tmp_path):
    model, processor = build_preset("blip_tiny")
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    _, loaded_processor = load_pretrained(tmp_path, "image_text_to_text")
    assert loaded_processor.apply_chat_template([[{"role": "user", "content": "a picture of"}]]) == ["a picture of"]


def test_bad_sources_are_one_line_errors(tmp_path):
    with pytest.raises(VLForgeError, match="kind 'vision' is not one of"):
        load_pretrained(tmp_path, "vision")
    with pytest.raises(VLForgeError, match=f"cannot load '{tmp_path}' as causal_lm") as info:
        load_pretrained(tmp_path, "causal_lm")
    assert "\n" not in str(info.value)
    missing = tmp_path / "missing"
    with pytest.raises(VLForgeError, match=f"cannot load '{missing}' as text_encoder: no such directory"):
        load_pretrained(missing, "text_encoder")
