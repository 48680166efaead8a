"""A BLIP-style model for pre-training with its three objectives (Li et al. 2022): no Lightning.

Built from transformers' BLIP components, random init, sizes from a tiny BLIP preset of
``vlforge.common.presets`` (``blip_itm_tiny`` by default) with optional overrides:

- ``vision_model`` (``BlipVisionModel``): ViT; its [CLS] output through ``vision_proj`` (to the preset's
  ``projection_dim``) is the ITC image feature;
  its whole token sequence is what the text side cross-attends to;
- ``text_encoder`` (``BlipTextModel`` with cross-attention layers): without the image it is the unimodal ITC
  text encoder ([CLS] = ``<s>`` through ``text_proj``); with the image (first token replaced by ``[ENC]``) it
  is the image-grounded encoder whose first output feeds ``itm_head`` (2 logits: not matched / matched);
- ``text_decoder`` (``BlipTextLMHeadModel``): the image-grounded causal decoder ([DEC] = ``<s>``) for
  captioning.

BLIP shares every text-encoder parameter except self-attention with the decoder; here the two are separate
(simpler checkpoints, more parameters). The ITC temperature is learnable: ``scale()`` = exp(t), clamped at
100.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import BlipTextLMHeadModel

from vlforge.common.errors import VLForgeError
from vlforge.common.presets import load_preset_config, shapes_tokenizer
from vlforge.common.presets.blip import build_blip

ENC_TOKEN = "[ENC]"
MAX_LOGIT_SCALE = math.log(100.0)


class BlipPretrainingModel(nn.Module):
    """Vision model, text encoder with cross-attention + ITM head, text decoder, ITC projections and
    temperature.

    ``preset``: a shipped BLIP preset name or YAML path (family ``blip``) giving the tokenizer and the sizes;
    ``image_size``, ``patch_size``, ``projection_dim`` replace the preset's values and ``vision`` / ``text``
    are merged into its ``BlipVisionConfig`` / ``BlipTextConfig`` fields. ``max_length`` truncates texts
    (tokens).
    """

    def __init__(self, preset: str = "blip_itm_tiny", image_size: int | None = None,
                 patch_size: int | None = None, projection_dim: int | None = None,
                 vision: dict[str, Any] | None = None, text: dict[str, Any] | None = None,
                 max_length: int = 64, init_logit_scale: float = math.log(1 / 0.07)) -> None:
        super().__init__()
        config = load_preset_config(preset)
        if config["family"] != "blip":
            raise VLForgeError(f"model.preset {preset!r} is a {config['family']} preset, not a blip one")
        sizes = dict(config.get("model") or {}, head="retrieval")
        replaced = {"image_size": image_size, "patch_size": patch_size, "projection_dim": projection_dim}
        sizes.update({key: value for key, value in replaced.items() if value is not None})
        # BlipVisionConfig's default initializer_range is 1e-10 (BLIP starts from a pretrained ViT): from
        # scratch that leaves the image features ~0, so a random init uses BERT's 0.02 unless told otherwise
        sizes["vision"] = {"initializer_range": 0.02, **(sizes.get("vision") or {}), **(vision or {})}
        sizes["text"] = {**(sizes.get("text") or {}), **(text or {})}
        tokenizer = shapes_tokenizer(**(config.get("tokenizer") or {}))
        tokenizer.add_tokens([ENC_TOKEN], special_tokens=True)
        retrieval, processor = build_blip(tokenizer, **sizes)
        self.tokenizer = processor.tokenizer
        self.max_length = max_length
        self.enc_token_id = self.tokenizer.convert_tokens_to_ids(ENC_TOKEN)
        self.vision_model = retrieval.vision_model
        self.text_encoder = retrieval.text_encoder
        self.itm_head = retrieval.itm_head
        embed_dim = retrieval.config.projection_dim
        self.vision_proj = nn.Linear(retrieval.config.vision_config.hidden_size, embed_dim)
        self.text_proj = nn.Linear(retrieval.config.text_config.hidden_size, embed_dim)
        self.text_decoder = BlipTextLMHeadModel(retrieval.config.text_config)
        self.logit_scale = nn.Parameter(torch.tensor(float(init_logit_scale)))
        self.logit_bias = None  # the ITC loss is CLIP's InfoNCE (no SigLIP bias)

    # ------------------------------------------------------------------ text
    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """``<s> text </s>`` ids and attention mask, padded to the longest, truncated at ``max_length``."""
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                               return_tensors="pt")
        return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}

    def encode_text(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        """Normalised ITC text features [B, D] from the unimodal text encoder (no cross-attention)."""
        hidden = self.text_encoder(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
        return F.normalize(self.text_proj(hidden.last_hidden_state[:, 0]), dim=-1)

    # ------------------------------------------------------------------ image
    def image_embeddings(self, images: torch.Tensor) -> torch.Tensor:
        """The ViT's output token sequence [B, 1 + patches, H] (what the text side cross-attends to)."""
        return self.vision_model(pixel_values=images).last_hidden_state

    def image_features(self, image_embeddings: torch.Tensor) -> torch.Tensor:
        """Normalised ITC image features [B, D] from the [CLS] token of ``image_embeddings``."""
        return F.normalize(self.vision_proj(image_embeddings[:, 0]), dim=-1)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return self.image_features(self.image_embeddings(images))

    def scale(self) -> torch.Tensor:
        return self.logit_scale.clamp(max=MAX_LOGIT_SCALE).exp()

    # ------------------------------------------------------------------ image-grounded heads
    def itm_logits(self, image_embeddings: torch.Tensor, input_ids: torch.Tensor,
                   attention_mask: torch.Tensor) -> torch.Tensor:
        """ITM logits [B, 2] (index 1 = matched) of image ``b`` with text ``b``: the text encoder with [ENC]
        as first token, cross-attending to the image tokens."""
        ids = input_ids.clone()
        ids[:, 0] = self.enc_token_id
        image_mask = torch.ones(image_embeddings.shape[:2], dtype=torch.long, device=image_embeddings.device)
        hidden = self.text_encoder(input_ids=ids, attention_mask=attention_mask,
                                   encoder_hidden_states=image_embeddings, encoder_attention_mask=image_mask)
        return self.itm_head(hidden.last_hidden_state[:, 0])

    def caption_logits(self, image_embeddings: torch.Tensor, input_ids: torch.Tensor,
                       attention_mask: torch.Tensor) -> torch.Tensor:
        """Decoder logits [B, L, V]; position t predicts token t + 1; ``input_ids`` start with [DEC] (<s>)."""
        image_mask = torch.ones(image_embeddings.shape[:2], dtype=torch.long, device=image_embeddings.device)
        output = self.text_decoder(input_ids=input_ids, attention_mask=attention_mask,
                                   encoder_hidden_states=image_embeddings, encoder_attention_mask=image_mask)
        return output.logits

    @torch.no_grad()
    def caption(self, images: torch.Tensor, max_new_tokens: int = 32) -> list[str]:
        """Greedy captions for ``images`` (stops at ``</s>``)."""
        embeddings = self.image_embeddings(images)
        start = torch.full((images.shape[0], 1), self.tokenizer.bos_token_id, device=images.device)
        image_mask = torch.ones(embeddings.shape[:2], dtype=torch.long, device=images.device)
        ids = self.text_decoder.generate(input_ids=start, encoder_hidden_states=embeddings,
                                         encoder_attention_mask=image_mask, max_new_tokens=max_new_tokens,
                                         do_sample=False, eos_token_id=self.tokenizer.eos_token_id,
                                         pad_token_id=self.tokenizer.pad_token_id)
        return self.tokenizer.batch_decode(ids, skip_special_tokens=True)
