"""Every shipped preset builds its real architecture; Qwen2-VL and BLIP run processor → loss → generate end to end;
the text LMs and the tiny open_clip models run forward."""

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image
from transformers import (
    BlipForConditionalGeneration,
    BlipForImageTextRetrieval,
    GPT2LMHeadModel,
    LlamaForCausalLM,
    LlavaForConditionalGeneration,
    Qwen2VLForConditionalGeneration,
)

from vlforge.common.presets import TINY_OPEN_CLIP_CONFIGS, build_preset, preset_names

EXPECTED = {
    "llava_tiny": LlavaForConditionalGeneration,
    "llava_small": LlavaForConditionalGeneration,
    "qwen2_vl_tiny": Qwen2VLForConditionalGeneration,
    "qwen2_vl_small": Qwen2VLForConditionalGeneration,
    "blip_tiny": BlipForConditionalGeneration,
    "blip_itm_tiny": BlipForImageTextRetrieval,
    "llama_tiny": LlamaForCausalLM,
    "gpt2_tiny": GPT2LMHeadModel,
    "open_clip_tiny": open_clip.CLIP,
}


def _images(n, seed=0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for _ in range(n)]


def _conversation(answer, prompt="Describe the image."):
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]},
            {"role": "assistant", "content": [{"type": "text", "text": answer}]}]


def _labels(inputs):
    return inputs["input_ids"].masked_fill(inputs["attention_mask"] == 0, -100)


def test_shipped_presets_are_the_expected_architectures():
    assert set(preset_names()) == set(EXPECTED)
    for name, cls in EXPECTED.items():
        model, _ = build_preset(name)
        assert isinstance(model, cls), name
        assert sum(p.numel() for p in model.parameters()) < 4_000_000, name


@pytest.mark.parametrize("name", ["qwen2_vl_tiny", "qwen2_vl_small"])
def test_qwen2_vl_end_to_end(name):
    model, processor = build_preset(name)
    texts = processor.apply_chat_template([_conversation("A red circle."), _conversation("Two blue squares.")])
    assert "<|vision_start|><|image_pad|><|vision_end|>" in texts[0]
    inputs = processor(images=_images(2), text=texts, return_tensors="pt", padding=True)
    image_tokens = (inputs["input_ids"] == model.config.image_token_id).sum(dim=1)
    assert image_tokens.tolist() == [16, 16]  # (64 / 8 / 2)^2 merged patches
    assert inputs["image_grid_thw"].tolist() == [[1, 8, 8], [1, 8, 8]]
    loss = model(**inputs, labels=_labels(inputs)).loss
    assert torch.isfinite(loss)
    loss.backward()
    assert model.model.visual.patch_embed.proj.weight.grad.abs().sum() > 0
    prompt = processor.apply_chat_template([_conversation("x")[:1]], add_generation_prompt=True)
    inputs = processor(images=_images(1), text=prompt, return_tensors="pt")
    generated = model.generate(**inputs, max_new_tokens=4, min_new_tokens=4, do_sample=False)
    assert generated.shape[1] == inputs["input_ids"].shape[1] + 4


def test_blip_captioning_end_to_end():
    model, processor = build_preset("blip_tiny")
    tokenizer = processor.tokenizer
    texts = processor.apply_chat_template([_conversation("a red circle.", "a picture of")])
    assert texts == ["a picture of a red circle."]
    inputs = processor(images=_images(1), text=texts, return_tensors="pt")
    ids = inputs["input_ids"][0].tolist()
    assert ids[0] == tokenizer.bos_token_id
    assert ids[-1] == tokenizer.eos_token_id == model.config.text_config.sep_token_id
    loss = model(**inputs, labels=_labels(inputs)).loss
    assert torch.isfinite(loss)
    loss.backward()
    prompt = processor(images=_images(1), text=["a picture of"], return_tensors="pt")
    generated = model.generate(**prompt, max_new_tokens=3, min_new_tokens=3, do_sample=False)
    prompt_ids = prompt["input_ids"][0, :-1].tolist()  # BLIP's generate drops the prompt's trailing </s>
    assert generated[0].tolist()[: len(prompt_ids)] == prompt_ids and generated.shape[1] == len(prompt_ids) + 3


def test_blip_retrieval_heads():
    model, processor = build_preset("blip_itm_tiny")
    inputs = processor(images=_images(2), text=["a red circle", "two blue squares"], return_tensors="pt", padding=True)
    itm = model(**inputs).itm_score
    assert itm.shape == (2, 2)  # match / no-match logits per pair
    similarity = model(**inputs, use_itm_head=False).itm_score
    assert similarity.shape == (2, 2) and similarity.abs().max() <= 1 + 1e-5  # cosine image × text


@pytest.mark.parametrize("name", ["llama_tiny", "gpt2_tiny"])
def test_text_lm_chat_loss_generate(name):
    model, tokenizer = build_preset(name)
    text = tokenizer.apply_chat_template([{"role": "user", "content": "rewrite: crimson disc"},
                                          {"role": "assistant", "content": "red circle"}], tokenize=False)
    assert text == "USER: rewrite: crimson disc\nASSISTANT: red circle</s>\n"
    batch = tokenizer([text, "a small star"], return_tensors="pt", padding=True)
    loss = model(**batch, labels=_labels(batch)).loss
    assert torch.isfinite(loss) and loss.item() > 0
    out = model.generate(**tokenizer(["USER: hi\nASSISTANT:"], return_tensors="pt"), max_new_tokens=3,
                         min_new_tokens=3, do_sample=False)
    assert out.shape[1] == len(tokenizer("USER: hi\nASSISTANT:")["input_ids"]) + 3


@pytest.mark.parametrize("name", sorted(TINY_OPEN_CLIP_CONFIGS))
def test_tiny_open_clip_registered_and_runs(name):
    assert name in open_clip.list_models()
    model = open_clip.create_model(name)
    size = TINY_OPEN_CLIP_CONFIGS[name]["vision_cfg"]["image_size"]
    tokens = open_clip.get_tokenizer(name)(["a red circle", "two blue squares"])
    image_features, text_features, logit_scale = model(torch.randn(2, 3, size, size), tokens)
    assert image_features.shape == text_features.shape == (2, 64)
    assert torch.allclose(image_features.norm(dim=-1), torch.ones(2), atol=1e-5)


def test_tiny_open_clip_configs_go_through_open_clips_public_registry():
    from open_clip.factory import get_model_config

    from vlforge.common.presets.open_clip_models import CONFIG_DIR

    assert sorted(TINY_OPEN_CLIP_CONFIGS) == ["vlforge-tiny-vit-32", "vlforge-tiny-vit-64"]
    for name, config in TINY_OPEN_CLIP_CONFIGS.items():
        assert get_model_config(name) == config and (CONFIG_DIR / f"{name}.json").is_file()
