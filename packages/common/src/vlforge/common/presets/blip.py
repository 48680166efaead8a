"""Tiny BLIP: transformers' ``BlipForConditionalGeneration`` (captioning: ViT encoder + BERT-style decoder with
cross-attention) or ``BlipForImageTextRetrieval`` (ITM head and ITC projections), random init.

BLIP conditions on the image through cross-attention, so the prompt holds no image token. The tokenizer copy used
here wraps every text as ``<s> text </s>`` (BLIP's [DEC] … [SEP]): generation replaces the first token by BOS and
drops the last, and the decoder stops at ``</s>`` (sep_token_id). The chat template concatenates the text parts of
all turns (images ignored), which makes a user prompt the caption prefix (e.g. "a picture of").
"""

from __future__ import annotations

from typing import Any

from tokenizers import processors
from transformers import (
    BlipConfig,
    BlipForConditionalGeneration,
    BlipForImageTextRetrieval,
    BlipImageProcessor,
    BlipProcessor,
    BlipTextConfig,
    BlipVisionConfig,
    PreTrainedTokenizerFast,
)

from vlforge.common.errors import VLForgeError
from vlforge.common.presets.config_fields import make_config
from vlforge.common.presets.llava import CLIP_MEAN, CLIP_STD

BLIP_HEADS = {"captioning": BlipForConditionalGeneration, "retrieval": BlipForImageTextRetrieval}
BLIP_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for part in message['content'] if part['type'] == 'text' -%}{{- part['text'] -}}{%- endfor -%}"
    "{%- endif -%}{%- if not loop.last -%}{{- ' ' -}}{%- endif -%}"
    "{%- endfor -%}"
)


def build_blip(tokenizer: PreTrainedTokenizerFast, image_size: int = 64, patch_size: int = 8,
               vision: dict[str, Any] | None = None, text: dict[str, Any] | None = None,
               projection_dim: int = 64, head: str = "captioning",
               ) -> tuple[BlipForConditionalGeneration | BlipForImageTextRetrieval, BlipProcessor]:
    """Build a randomly initialised BLIP (``head``: "captioning" or "retrieval") and its processor.

    ``vision``: extra ``BlipVisionConfig`` fields; ``text``: extra ``BlipTextConfig`` fields (its
    ``encoder_hidden_size`` follows the vision width).
    """
    if head not in BLIP_HEADS:
        raise VLForgeError(f"model.head {head!r} is not one of {sorted(BLIP_HEADS)}")
    bos, eos = tokenizer.bos_token, tokenizer.eos_token
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} $B {eos}",
        special_tokens=[(bos, tokenizer.bos_token_id), (eos, tokenizer.eos_token_id)])
    vision_config = make_config(BlipVisionConfig, "model.vision", vision, image_size=image_size,
                                patch_size=patch_size)
    text_config = make_config(BlipTextConfig, "model.text", text, vocab_size=len(tokenizer),
                              pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                              eos_token_id=tokenizer.eos_token_id, sep_token_id=tokenizer.eos_token_id,
                              encoder_hidden_size=vision_config.hidden_size)
    config = BlipConfig(text_config=text_config.to_dict(), vision_config=vision_config.to_dict(),
                        projection_dim=projection_dim)
    model = BLIP_HEADS[head](config)
    image_processor = BlipImageProcessor(size={"height": image_size, "width": image_size},
                                         image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD))
    processor = BlipProcessor(image_processor=image_processor, tokenizer=tokenizer)
    tokenizer.chat_template = processor.chat_template = BLIP_CHAT_TEMPLATE  # BlipProcessor drops it on load
    return model, processor
