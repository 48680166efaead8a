"""BlipPretrainingModel: transformers' BLIP components wired as BLIP's unimodal encoders, image-grounded ITM
encoder and captioning decoder (tiny preset, random init)."""

from __future__ import annotations

import pytest
import torch
from transformers import BlipTextLMHeadModel, BlipTextModel, BlipVisionModel

from vlforge.common.errors import VLForgeError
from vlforge.vlm.models.blip import BlipPretrainingModel


@pytest.fixture(scope="module")
def model() -> BlipPretrainingModel:
    torch.manual_seed(0)
    return BlipPretrainingModel(image_size=32, projection_dim=24, text={"max_position_embeddings": 48},
                                max_length=12).eval()


def test_components_and_sizes(model):
    assert isinstance(model.vision_model, BlipVisionModel) and isinstance(model.text_encoder, BlipTextModel)
    assert isinstance(model.text_decoder, BlipTextLMHeadModel)
    assert model.vision_model.config.image_size == 32
    assert model.text_encoder.config.max_position_embeddings == 48
    assert model.text_encoder.config.vocab_size == len(model.tokenizer)
    assert model.tokenizer.convert_ids_to_tokens(model.enc_token_id) == "[ENC]"
    # a usable random init, not BlipVisionConfig's 1e-10 (made for loading a pretrained ViT)
    assert model.vision_model.embeddings.patch_embedding.weight.std().item() > 1e-3
    images = torch.randn(3, 3, 32, 32)
    embeddings = model.image_embeddings(images)
    assert embeddings.shape == (3, 1 + 16, 64)
    features = model.encode_image(images)
    assert features.shape == (3, 24)
    torch.testing.assert_close(features.norm(dim=-1), torch.ones(3))
    tokens = model.tokenize(["a red circle", "a small blue square left of a big green star " * 3])
    assert tokens["input_ids"].shape[1] == 12  # truncated at max_length
    assert tokens["input_ids"][0, 0].item() == model.tokenizer.bos_token_id
    assert model.encode_text(tokens).shape == (2, 24)


def test_itm_and_decoder_look_at_the_image_and_itm_starts_with_enc(model):
    tokens = model.tokenize(["a red circle", "a blue square"])
    ids, mask = tokens["input_ids"], tokens["attention_mask"]
    first = model.image_embeddings(torch.randn(2, 3, 32, 32))
    second = model.image_embeddings(torch.randn(2, 3, 32, 32))
    assert model.itm_logits(first, ids, mask).shape == (2, 2)
    assert not torch.allclose(model.itm_logits(first, ids, mask), model.itm_logits(second, ids, mask))
    logits = model.caption_logits(first, ids, mask)
    assert logits.shape == (2, ids.shape[1], len(model.tokenizer))
    assert not torch.allclose(logits, model.caption_logits(second, ids, mask))
    # ITM replaces the first token by [ENC]: the same text with <s> gives other logits
    unimodal = model.text_encoder(input_ids=ids, attention_mask=mask).last_hidden_state
    assert not torch.allclose(unimodal[:, 0], model.text_encoder(
        input_ids=torch.cat([torch.full_like(ids[:, :1], model.enc_token_id), ids[:, 1:]], 1),
        attention_mask=mask).last_hidden_state[:, 0])
    # the decoder is causal: a change to the last token leaves the earlier positions' logits unchanged
    changed = ids.clone()
    changed[0, 2] = 50
    before, after = model.caption_logits(first, ids, mask), model.caption_logits(first, changed, mask)
    torch.testing.assert_close(before[0, :2], after[0, :2])


def test_captions_are_generated_as_text(model):
    captions = model.caption(torch.randn(2, 3, 32, 32), max_new_tokens=4)
    assert len(captions) == 2 and all(isinstance(c, str) for c in captions)


def test_a_non_blip_preset_is_refused():
    with pytest.raises(VLForgeError, match="llava preset, not a blip one"):
        BlipPretrainingModel(preset="llava_tiny")
    with pytest.raises(VLForgeError, match="model.vision.no_such_field"):
        BlipPretrainingModel(vision={"no_such_field": 1})
