"""The tiny LLaVA preset end to end: chat template, processor, loss with labels, generate, save/load round trip."""

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import LlavaForConditionalGeneration, LlavaProcessor

from vlforge.common.presets import build_preset, load_preset_config
from vlforge.common.presets.tokenizer import IMAGE_TOKEN


@pytest.fixture(scope="module")
def llava():
    return build_preset("llava_tiny")


def _images(n, seed=0):
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for _ in range(n)]


def _conversation(answer):
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe the image."}]},
            {"role": "assistant", "content": [{"type": "text", "text": answer}]}]


def test_is_real_llava_sized_for_shapesworld(llava):
    model, processor = llava
    assert isinstance(model, LlavaForConditionalGeneration) and isinstance(processor, LlavaProcessor)
    config = load_preset_config("llava_tiny")["model"]
    assert model.config.vision_config.image_size == 64
    assert model.config.text_config.vocab_size == len(processor.tokenizer)
    assert model.config.image_token_id == processor.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    assert model.config.text_config.num_hidden_layers == config["text"]["num_hidden_layers"]
    assert sum(p.numel() for p in model.parameters()) < 1_000_000


def test_chat_template_processor_loss_backward(llava):
    model, processor = llava
    texts = processor.apply_chat_template([_conversation("A red circle."), _conversation("Two blue squares.")])
    assert texts[0] == "USER: <image> Describe the image.\nASSISTANT: A red circle.</s>\n"
    inputs = processor(images=_images(2), text=texts, return_tensors="pt", padding=True)
    assert inputs["pixel_values"].shape == (2, 3, 64, 64)
    num_image_tokens = (inputs["input_ids"] == model.config.image_token_id).sum(dim=1)
    assert num_image_tokens.tolist() == [64, 64]  # (64 / 8)^2 patches, CLS dropped
    labels = inputs["input_ids"].masked_fill(inputs["attention_mask"] == 0, -100)
    out = model(**inputs, labels=labels)
    assert torch.isfinite(out.loss) and out.loss.item() > 0
    out.loss.backward()
    assert model.model.multi_modal_projector.linear_1.weight.grad.abs().sum() > 0
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.model.vision_tower.parameters())
    model.zero_grad()


def test_assistant_mask_covers_answer_and_eos(llava):
    _, processor = llava
    conversation = _conversation("A red circle.")
    conversation[0]["content"][0]["image"] = _images(1)[0]
    out = processor.apply_chat_template(conversation, tokenize=True, return_dict=True,
                                        return_assistant_tokens_mask=True, return_tensors="pt")
    ids, mask = out["input_ids"][0], out["assistant_masks"][0].bool()
    assert processor.tokenizer.decode(ids[mask]) == " A red circle.</s>"


def test_generate_continues_the_prompt(llava):
    model, processor = llava
    prompt = processor.apply_chat_template([_conversation("x")[:1]], add_generation_prompt=True)
    assert prompt[0].endswith("ASSISTANT:")
    inputs = processor(images=_images(1), text=prompt, return_tensors="pt")
    generated = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    assert generated.shape[1] > inputs["input_ids"].shape[1]
    assert torch.equal(generated[:, : inputs["input_ids"].shape[1]], inputs["input_ids"])


def test_same_seed_same_weights_and_global_rng_untouched():
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    a, _ = build_preset("llava_tiny")
    assert torch.equal(torch.rand(1), expected)
    b, _ = build_preset("llava_tiny")
    c, _ = build_preset("llava_tiny", seed=1)
    wa, wb, wc = (m.model.multi_modal_projector.linear_1.weight for m in (a, b, c))
    assert torch.equal(wa, wb) and not torch.equal(wa, wc)
