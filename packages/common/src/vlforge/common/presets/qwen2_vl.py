"""Tiny Qwen2-VL: transformers' ``Qwen2VLForConditionalGeneration`` (ViT with 2-D rotary positions and 2×2 patch
merging + Qwen2 LM with multimodal RoPE), random init.

A ``image_size`` px image gives (image_size / patch_size)^2 patches, merged 2×2 into
(image_size / patch_size / 2)^2 ``<|image_pad|>`` tokens (16 for 64 px and patch 8). The image processor keeps
ShapesWorld images at their size (min_pixels = max_pixels = image_size^2).
"""

from __future__ import annotations

from typing import Any

from transformers import (
    PreTrainedTokenizerFast,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLImageProcessor,
    Qwen2VLProcessor,
    Qwen2VLTextConfig,
    Qwen2VLVideoProcessor,
    Qwen2VLVisionConfig,
)

from vlforge.common.errors import VLForgeError
from vlforge.common.presets.chat_templates import chat_template
from vlforge.common.presets.config_fields import make_config
from vlforge.common.presets.llava import CLIP_MEAN, CLIP_STD


def build_qwen2_vl(tokenizer: PreTrainedTokenizerFast, image_size: int = 64, patch_size: int = 8,
                   merge_size: int = 2, vision: dict[str, Any] | None = None, text: dict[str, Any] | None = None,
                   mrope_section: tuple[int, int, int] = (2, 3, 3),
                   ) -> tuple[Qwen2VLForConditionalGeneration, Qwen2VLProcessor]:
    """Build a randomly initialised Qwen2-VL and its processor.

    ``vision``: extra ``Qwen2VLVisionConfig`` fields (depth, embed_dim, num_heads, ...); ``text``: extra
    ``Qwen2VLTextConfig`` fields. ``mrope_section`` splits head_dim / 2 rotary frequencies between the temporal,
    height and width positions (it must sum to head_dim / 2).
    """
    text = dict(text or {})
    head_dim = text.get("hidden_size", 64) // text.get("num_attention_heads", 4)
    if sum(mrope_section) * 2 != head_dim:
        raise VLForgeError(f"model.mrope_section {list(mrope_section)} must sum to head_dim / 2 = {head_dim // 2}")
    text_config = make_config(Qwen2VLTextConfig, "model.text", text, vocab_size=len(tokenizer),
                              pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                              eos_token_id=tokenizer.eos_token_id,
                              rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                               "mrope_section": list(mrope_section)})
    vision_config = make_config(Qwen2VLVisionConfig, "model.vision", vision, patch_size=patch_size,
                                spatial_merge_size=merge_size, hidden_size=text_config.hidden_size)
    ids = tokenizer.convert_tokens_to_ids
    config = Qwen2VLConfig(text_config=text_config, vision_config=vision_config,
                           image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
                           vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"))
    model = Qwen2VLForConditionalGeneration(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    pixels = image_size * image_size
    sizing = dict(min_pixels=pixels, max_pixels=pixels, patch_size=patch_size, merge_size=merge_size,
                  temporal_patch_size=vision_config.temporal_patch_size, image_mean=list(CLIP_MEAN),
                  image_std=list(CLIP_STD))
    processor = Qwen2VLProcessor(image_processor=Qwen2VLImageProcessor(**sizing), tokenizer=tokenizer,
                                 video_processor=Qwen2VLVideoProcessor(**sizing),
                                 chat_template=chat_template("<|vision_start|><|image_pad|><|vision_end|>"))
    return model, processor
