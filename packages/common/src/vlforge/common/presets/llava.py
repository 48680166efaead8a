"""Tiny LLaVA: transformers' ``LlavaForConditionalGeneration`` with a CLIP vision tower and a Llama LM, random init.

The vision tower sees ``image_size`` px images in ``patch_size`` patches; with the "default" feature strategy (CLS
dropped) each image becomes (image_size / patch_size)^2 ``<image>`` tokens in the prompt, which ``LlavaProcessor``
expands from one placeholder.
"""

from __future__ import annotations

from typing import Any

from transformers import (
    CLIPImageProcessor,
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerFast,
)

from vlforge.common.presets.chat_templates import chat_template
from vlforge.common.presets.config_fields import make_config
from vlforge.common.presets.tokenizer import IMAGE_TOKEN

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def clip_image_processor(image_size: int) -> CLIPImageProcessor:
    """Resize the short side to ``image_size``, centre-crop a square, normalise with CLIP's mean/std."""
    return CLIPImageProcessor(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size},
                              do_center_crop=True, image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD))


def build_llava(tokenizer: PreTrainedTokenizerFast, image_size: int = 64, patch_size: int = 8,
                vision: dict[str, Any] | None = None, text: dict[str, Any] | None = None,
                projector_hidden_act: str = "gelu", vision_feature_layer: int = -1,
                vision_feature_select_strategy: str = "default",
                ) -> tuple[LlavaForConditionalGeneration, LlavaProcessor]:
    """Build a randomly initialised LLaVA and its processor.

    ``vision``: extra ``CLIPVisionConfig`` fields (hidden_size, num_hidden_layers, ...); ``text``: extra
    ``LlamaConfig`` fields. Vocabulary size and special-token ids come from ``tokenizer``.
    """
    vision_config = make_config(CLIPVisionConfig, "model.vision", vision, image_size=image_size, patch_size=patch_size)
    text_config = make_config(LlamaConfig, "model.text", text, vocab_size=len(tokenizer),
                              pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                              eos_token_id=tokenizer.eos_token_id)
    image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    config = LlavaConfig(vision_config=vision_config, text_config=text_config, image_token_index=image_token_id,
                         projector_hidden_act=projector_hidden_act, vision_feature_layer=vision_feature_layer,
                         vision_feature_select_strategy=vision_feature_select_strategy)
    model = LlavaForConditionalGeneration(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    processor = LlavaProcessor(image_processor=clip_image_processor(image_size), tokenizer=tokenizer,
                               patch_size=patch_size, vision_feature_select_strategy=vision_feature_select_strategy,
                               chat_template=chat_template(IMAGE_TOKEN), image_token=IMAGE_TOKEN,
                               num_additional_image_tokens=1)
    return model, processor
