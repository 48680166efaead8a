"""Tiny LLaVA: transformers' ``LlavaForConditionalGeneration`` with a CLIP vision tower and a Llama LM, random init.

The vision tower sees ``image_size`` px images in ``patch_size`` patches; with the "default" feature strategy (CLS
dropped) each image becomes (image_size / patch_size)^2 ``<image>`` tokens in the prompt, which ``LlavaProcessor``
expands from one placeholder. ``vision_from`` starts the vision tower from a pretrained CLIP vision model instead
(a Hugging Face CLIP / CLIPVision folder or hub name, e.g. a ViT that vlforge-vlm trained and exported with
``vlforge-vlm export --format hf-vision``), as LLaVA starts from a pretrained CLIP ViT; its config, weights and
image normalisation are used, the projector and LM stay randomly initialised.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import transformers
from transformers import (
    CLIPImageProcessor,
    CLIPVisionConfig,
    CLIPVisionModel,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerFast,
)

from vlforge.common.errors import VLForgeError
from vlforge.common.presets.chat_templates import chat_template
from vlforge.common.presets.config_fields import make_config
from vlforge.common.presets.tokenizer import IMAGE_TOKEN

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def clip_image_processor(image_size: int, mean: tuple[float, ...] = CLIP_MEAN,
                         std: tuple[float, ...] = CLIP_STD) -> CLIPImageProcessor:
    """Resize the short side to ``image_size``, centre-crop a square, normalise with ``mean`` / ``std`` (CLIP's)."""
    return CLIPImageProcessor(size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size},
                              do_center_crop=True, image_mean=list(mean), image_std=list(std))


def pretrained_clip_vision(vision_from: str) -> tuple[CLIPVisionModel, CLIPImageProcessor]:
    """A pretrained CLIP vision tower and its image processor (the folder's, else CLIP's normalisation at the
    tower's image size). ``vision_from``: a local folder or a hub name; remote code is never run."""
    try:
        verbosity = transformers.logging.get_verbosity()
        transformers.logging.set_verbosity_error()  # a full CLIP checkpoint's text tower is expected to go unused
        try:
            tower = CLIPVisionModel.from_pretrained(vision_from, trust_remote_code=False)
        finally:
            transformers.logging.set_verbosity(verbosity)
    except (OSError, ValueError) as exc:
        raise VLForgeError(f"model.vision_from {vision_from!r}: not a CLIP vision model "
                           f"({str(exc).splitlines()[0]})") from None
    if (Path(vision_from) / "preprocessor_config.json").is_file():
        processor = CLIPImageProcessor.from_pretrained(vision_from)
    else:
        processor = clip_image_processor(tower.config.image_size)
    return tower, processor


def build_llava(tokenizer: PreTrainedTokenizerFast, image_size: int | None = None, patch_size: int | None = None,
                vision: dict[str, Any] | None = None, text: dict[str, Any] | None = None,
                projector_hidden_act: str = "gelu", vision_feature_layer: int = -1,
                vision_feature_select_strategy: str = "default", vision_from: str | None = None,
                ) -> tuple[LlavaForConditionalGeneration, LlavaProcessor]:
    """Build a LLaVA (random init, or the vision tower from ``vision_from``) and its processor.

    ``vision``: extra ``CLIPVisionConfig`` fields (hidden_size, num_hidden_layers, ...); ``text``: extra
    ``LlamaConfig`` fields. Vocabulary size and special-token ids come from ``tokenizer``. ``image_size`` /
    ``patch_size`` default to 64 / 8; with ``vision_from`` they come from the pretrained tower (``vision``,
    ``image_size`` and ``patch_size`` must then be left out).
    """
    pretrained = None
    if vision_from is not None:
        given = [name for name, value in (("vision", vision), ("image_size", image_size), ("patch_size", patch_size))
                 if value is not None]
        if given:
            raise VLForgeError(f"model.{given[0]} and model.vision_from exclude each other (the pretrained tower "
                               "fixes its own config)")
        pretrained, image_processor = pretrained_clip_vision(vision_from)
        vision_config = pretrained.config
        patch_size = vision_config.patch_size
    else:
        image_size, patch_size = image_size or 64, patch_size or 8
        vision_config = make_config(CLIPVisionConfig, "model.vision", vision, image_size=image_size,
                                    patch_size=patch_size)
        image_processor = clip_image_processor(image_size)
    text_config = make_config(LlamaConfig, "model.text", text, vocab_size=len(tokenizer),
                              pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                              eos_token_id=tokenizer.eos_token_id)
    image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    config = LlavaConfig(vision_config=vision_config, text_config=text_config, image_token_index=image_token_id,
                         projector_hidden_act=projector_hidden_act, vision_feature_layer=vision_feature_layer,
                         vision_feature_select_strategy=vision_feature_select_strategy)
    model = LlavaForConditionalGeneration(config)
    if pretrained is not None:
        model.model.vision_tower.load_state_dict(pretrained.state_dict())
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer,
                               patch_size=patch_size, vision_feature_select_strategy=vision_feature_select_strategy,
                               chat_template=chat_template(IMAGE_TOKEN), image_token=IMAGE_TOKEN,
                               num_additional_image_tokens=1)
    return model, processor
