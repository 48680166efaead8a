"""A trained open_clip ViT image tower as a Hugging Face ``CLIPVisionModelWithProjection`` folder.

That folder is what LLaVA-style models take as their vision tower (``CLIPVisionModel.from_pretrained``): the
captioner's ``llava`` presets load it through ``model.vision_from``, the way LLaVA starts from a pretrained CLIP
ViT. Export folder (``save_pretrained`` layout)::

    config.json                  CLIPVisionConfig (hidden_size = width, heads = width / head_width, ...)
    model.safetensors            the converted weights
    preprocessor_config.json     CLIPImageProcessor with the normalisation the tower was trained with

Key mapping (open_clip ``VisionTransformer`` -> transformers ``CLIPVisionModelWithProjection``): ``conv1`` ->
``embeddings.patch_embedding``, ``class_embedding`` / ``positional_embedding`` -> ``embeddings.*``, ``ln_pre`` /
``ln_post`` -> ``pre_layrnorm`` / ``post_layernorm``, per block the fused ``attn.in_proj`` split into ``q/k/v_proj``,
``attn.out_proj``, ``ln_1`` / ``ln_2`` -> ``layer_norm1`` / ``layer_norm2``, ``mlp.c_fc`` / ``mlp.c_proj`` ->
``mlp.fc1`` / ``mlp.fc2``, and ``proj`` (x @ proj) -> ``visual_projection.weight`` (its transpose). Towers with
parts CLIPVisionModel has no counterpart for (layer scale, attentional pooling, no ``ln_pre``, average pooling,
timm backbones, ...) are refused with the part named.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from open_clip.transformer import VisionTransformer
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from vlforge.common.atomic_file import atomic_folder
from vlforge.common.errors import VLForgeError
from vlforge.common.presets.llava import CLIP_MEAN, CLIP_STD, clip_image_processor
from vlforge.vlm.loading import model_from_checkpoint
from vlforge.vlm.models import ContrastiveModel, OpenClipImageTower
from vlforge.vlm.models.open_clip_towers import open_clip_config
from vlforge.vlm.open_clip_export import tower_model

_BLOCK_KEYS = {"attn.out_proj": "self_attn.out_proj", "ln_1": "layer_norm1", "ln_2": "layer_norm2",
               "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}


def hf_vision_config(open_clip_model_config: dict[str, Any]) -> CLIPVisionConfig:
    """The ``CLIPVisionConfig`` of an open_clip model config's ViT (``vision_cfg``, ``embed_dim``,
    ``quick_gelu``)."""
    vision = open_clip_model_config["vision_cfg"]
    if "timm_model_name" in vision:
        raise VLForgeError(f"open_clip vision tower is the timm model {vision['timm_model_name']!r}; only open_clip "
                           "ViTs convert to CLIPVisionModel")
    width, head_width = int(vision["width"]), int(vision.get("head_width", 64))
    if width % head_width:
        raise VLForgeError(f"open_clip vision width {width} is not a multiple of head_width {head_width}")
    return CLIPVisionConfig(
        hidden_size=width, intermediate_size=int(width * float(vision.get("mlp_ratio", 4.0))),
        num_hidden_layers=int(vision["layers"]), num_attention_heads=width // head_width,
        image_size=int(vision["image_size"]), patch_size=int(vision["patch_size"]),
        projection_dim=int(open_clip_model_config["embed_dim"]),
        hidden_act="quick_gelu" if open_clip_model_config.get("quick_gelu") else "gelu", layer_norm_eps=1e-5)


def hf_vision_state_dict(visual: nn.Module) -> dict[str, torch.Tensor]:
    """``CLIPVisionModelWithProjection`` weights of an open_clip ``VisionTransformer`` (module docstring)."""
    if not isinstance(visual, VisionTransformer):
        raise VLForgeError(f"the image tower is {type(visual).__name__}, not an open_clip VisionTransformer")
    if getattr(visual, "pool_type", "tok") != "tok" or getattr(visual, "attn_pool", None) is not None:
        raise VLForgeError("the open_clip ViT pools with "
                           f"{getattr(visual, 'attn_pool_type', None) or visual.pool_type!r}; CLIPVisionModel uses the "
                           "class token")
    source = dict(visual.state_dict())
    out: dict[str, torch.Tensor] = {}

    def take(src: str, dst: str) -> None:
        if src not in source:
            raise VLForgeError(f"the open_clip ViT has no {src!r}; CLIPVisionModel needs it")
        out[dst] = source.pop(src)

    take("conv1.weight", "vision_model.embeddings.patch_embedding.weight")
    take("class_embedding", "vision_model.embeddings.class_embedding")
    take("positional_embedding", "vision_model.embeddings.position_embedding.weight")
    for src, dst in (("ln_pre", "pre_layrnorm"), ("ln_post", "post_layernorm")):
        for leaf in ("weight", "bias"):
            take(f"{src}.{leaf}", f"vision_model.{dst}.{leaf}")
    for index in range(len(visual.transformer.resblocks)):
        src, dst = f"transformer.resblocks.{index}.", f"vision_model.encoder.layers.{index}."
        for leaf in ("weight", "bias"):
            fused = source.pop(f"{src}attn.in_proj_{leaf}", None)
            if fused is None:
                raise VLForgeError(f"open_clip block {index} has no fused attention {leaf}; CLIPVisionModel needs it")
            for name, part in zip("qkv", fused.chunk(3), strict=True):
                out[f"{dst}self_attn.{name}_proj.{leaf}"] = part
            for src_part, dst_part in _BLOCK_KEYS.items():
                take(f"{src}{src_part}.{leaf}", f"{dst}{dst_part}.{leaf}")
    if "proj" in source:
        out["visual_projection.weight"] = source.pop("proj").t()
    if source:
        raise VLForgeError(f"the open_clip ViT has parts CLIPVisionModel has no counterpart for: {sorted(source)[:4]}")
    return {k: v.detach().clone().contiguous() for k, v in out.items()}


def to_hf_vision(model: ContrastiveModel, open_clip_model_config: dict[str, Any]) -> CLIPVisionModelWithProjection:
    """A ``CLIPVisionModelWithProjection`` holding ``model``'s open_clip image tower."""
    if not isinstance(model.image_tower, OpenClipImageTower):
        raise VLForgeError(f"Hugging Face vision export needs an open_clip image tower, got "
                           f"{type(model.image_tower).__name__}")
    state = hf_vision_state_dict(model.image_tower.visual)
    config = hf_vision_config(open_clip_model_config)
    if "visual_projection.weight" not in state:
        raise VLForgeError("the open_clip ViT has no output projection 'proj'")
    target = CLIPVisionModelWithProjection(config)
    missing, unexpected = target.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise VLForgeError(f"the converted weights do not fit CLIPVisionModelWithProjection (missing {missing[:3]}, "
                           f"unexpected {unexpected[:3]})")
    return target.eval()


def export_hf_vision(model: ContrastiveModel, out_dir: str | os.PathLike, open_clip_model_config: dict[str, Any],
                     mean: tuple[float, ...] = CLIP_MEAN, std: tuple[float, ...] = CLIP_STD,
                     inputs: Sequence[str | os.PathLike] = ()) -> Path:
    """Write ``model``'s image tower as a Hugging Face CLIP vision folder (module docstring; atomically, never onto
    one of ``inputs``); returns it."""
    vision = to_hf_vision(model, open_clip_model_config)
    with atomic_folder(out_dir, inputs) as out:
        vision.save_pretrained(out)
        clip_image_processor(vision.config.image_size, mean, std).save_pretrained(out)
    return Path(out_dir)


def export_hf_vision_checkpoint(checkpoint: str | os.PathLike, out_dir: str | os.PathLike,
                                run_config: str | os.PathLike | None = None) -> Path:
    """Export the image tower of a ContrastiveLitModule checkpoint (its open_clip config read from the run
    config)."""
    model, network = model_from_checkpoint(checkpoint, run_config)
    image_model = tower_model(network, "image_tower")
    if image_model is None:
        raise VLForgeError(f"checkpoint {checkpoint}: the run config names no open_clip model for the image tower")
    return export_hf_vision(model, out_dir, open_clip_config(image_model), inputs=[checkpoint, run_config])
