"""The image-token count of each sample against its images' features: an error naming the sample when off."""

from __future__ import annotations

import pytest
import torch

from vlforge.common.errors import VLForgeError
from vlforge.vlm.mllm import build_llava
from vlforge.vlm.mllm.image_tokens import check_image_tokens, features_per_image


@pytest.mark.parametrize("family", ["clip", "siglip"])
def test_features_per_image_is_what_the_model_produces(towers, family):
    model, _ = build_llava(towers[family], "preset:llama_tiny")
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        features = model.model.get_image_features(pixel_values=pixels)
    features = getattr(features, "pooler_output", features)
    produced = features[0].shape[0] if isinstance(features, (list, tuple)) else features.shape[1]
    assert features_per_image(model.config, 32, 32) == produced == 16


def test_counts_are_checked_per_sample(towers, image_inputs):
    model, processor = build_llava(towers["clip"], "preset:llama_tiny")
    inputs = image_inputs(processor)
    check_image_tokens(inputs["input_ids"], model.config, [1], inputs["pixel_values"], ["q1"])
    cut = inputs["input_ids"][:, :10]  # truncation inside the image tokens
    with pytest.raises(VLForgeError, match=r"sample q1: \d+ image tokens in the text, but its 1 image\(s\) give 16"):
        check_image_tokens(cut, model.config, [1], inputs["pixel_values"], ["q1"])
    pair = torch.cat([inputs["input_ids"], inputs["input_ids"]])
    with pytest.raises(VLForgeError, match="sample second: 16 image tokens in the text, but its 2 image"):
        check_image_tokens(pair, model.config, [1, 2], inputs["pixel_values"], ["first", "second"])
    text_only = processor.tokenizer(["no image here"], return_tensors="pt")["input_ids"]
    check_image_tokens(text_only, model.config, [0], None, ["t"])
    with pytest.raises(VLForgeError, match="1 samples, 2 image counts"):
        check_image_tokens(text_only, model.config, [0, 0], None, ["t"])
