"""A trained open_clip CLIP (both towers) as a whole Hugging Face ``CLIPModel`` folder with its tokenizer and
processor, so transformers' ``pipeline("zero-shot-image-classification", model=<folder>)`` and
``CLIPModel.from_pretrained`` use it as they use openai/clip-vit-base-patch32.

Export folder (``save_pretrained`` layout)::

    config.json, model.safetensors        CLIPConfig / CLIPModel
    vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json
                                          CLIPTokenizer built from open_clip's bundled BPE (same ids)
    preprocessor_config.json              CLIPImageProcessor with the training normalisation

Image tower: the mapping of ``hf_vision_export``. Text tower (open_clip ``TextTransformer`` -> ``CLIPTextModel``):
``token_embedding`` / ``positional_embedding`` -> ``text_model.embeddings.*``, blocks as for the image tower,
``ln_final`` -> ``text_model.final_layer_norm``, ``text_projection`` (x @ P) -> ``text_projection.weight`` (P^T);
``logit_scale`` unchanged. Pooling at the end-of-text token (open_clip's argmax pooling, the end-of-text id being the
largest) is CLIPTextModel's eos pooling with ``eos_token_id`` 49407. Text towers without a counterpart (custom or
Hugging Face text towers, other poolings, a logit bias) are refused with the reason.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from open_clip.tokenizer import SimpleTokenizer
from transformers import CLIPConfig, CLIPModel, CLIPProcessor, CLIPTextConfig, CLIPTokenizer

from vlforge.common.atomic_file import atomic_folder
from vlforge.common.errors import VLForgeError
from vlforge.common.presets.llava import CLIP_MEAN, CLIP_STD, clip_image_processor
from vlforge.vlm.hf_vision_export import _BLOCK_KEYS, hf_vision_config, hf_vision_state_dict
from vlforge.vlm.loading import model_from_checkpoint
from vlforge.vlm.models import ContrastiveModel, OpenClipImageTower, OpenClipTextTower
from vlforge.vlm.open_clip_export import open_clip_model_config, tower_model

BOS_ID, EOS_ID = 49406, 49407


def hf_clip_config(config: dict[str, Any]) -> CLIPConfig:
    """The ``CLIPConfig`` of an open_clip model config (``vision_cfg``, ``text_cfg``, ``embed_dim``, ...)."""
    if config.get("custom_text") or "hf_model_name" in config.get("text_cfg", {}):
        raise VLForgeError("the text tower is a custom / Hugging Face text model; only open_clip's text "
                           "transformer converts to CLIPTextModel")
    text = config["text_cfg"]
    width, heads = int(text.get("width", 512)), int(text.get("heads", 8))
    if text.get("pool_type", "argmax") != "argmax" or int(text.get("vocab_size", 49408)) != 49408:
        raise VLForgeError("only open_clip text towers with the CLIP BPE vocabulary (49408) and argmax pooling "
                           "convert to CLIPTextModel")
    text_config = CLIPTextConfig(
        vocab_size=49408, hidden_size=width, intermediate_size=int(width * float(text.get("mlp_ratio", 4.0))),
        num_hidden_layers=int(text.get("layers", 12)), num_attention_heads=heads,
        max_position_embeddings=int(text.get("context_length", 77)), projection_dim=int(config["embed_dim"]),
        hidden_act="quick_gelu" if config.get("quick_gelu") else "gelu", layer_norm_eps=1e-5,
        bos_token_id=BOS_ID, eos_token_id=EOS_ID, pad_token_id=0)
    vision_config = hf_vision_config(config)
    return CLIPConfig(text_config=text_config.to_dict(), vision_config=vision_config.to_dict(),
                      projection_dim=int(config["embed_dim"]))


def hf_text_state_dict(text: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``CLIPModel`` text weights (``text_model.*``, ``text_projection.weight``) of an open_clip text tower."""
    source = {k: v for k, v in text.state_dict().items() if k != "attn_mask"}
    out: dict[str, torch.Tensor] = {}

    def take(src: str, dst: str) -> None:
        if src not in source:
            raise VLForgeError(f"the open_clip text tower has no {src!r}; CLIPTextModel needs it")
        out[dst] = source.pop(src)

    take("token_embedding.weight", "text_model.embeddings.token_embedding.weight")
    take("positional_embedding", "text_model.embeddings.position_embedding.weight")
    for leaf in ("weight", "bias"):
        take(f"ln_final.{leaf}", f"text_model.final_layer_norm.{leaf}")
    for index in range(len(text.transformer.resblocks)):
        src, dst = f"transformer.resblocks.{index}.", f"text_model.encoder.layers.{index}."
        for leaf in ("weight", "bias"):
            fused = source.pop(f"{src}attn.in_proj_{leaf}")
            for name, part in zip("qkv", fused.chunk(3), strict=True):
                out[f"{dst}self_attn.{name}_proj.{leaf}"] = part
            for src_part, dst_part in _BLOCK_KEYS.items():
                take(f"{src}{src_part}.{leaf}", f"{dst}{dst_part}.{leaf}")
    projection = source.pop("text_projection", None)
    if not isinstance(projection, torch.Tensor) or projection.dim() != 2:
        raise VLForgeError("the open_clip text tower has no linear text_projection")
    out["text_projection.weight"] = projection.t()
    if source:
        raise VLForgeError(f"the open_clip text tower has parts CLIPTextModel has no counterpart for: "
                           f"{sorted(source)[:4]}")
    return {k: v.detach().clone().contiguous() for k, v in out.items()}


def to_hf_clip(model: ContrastiveModel, config: dict[str, Any]) -> CLIPModel:
    """A ``CLIPModel`` holding ``model``'s open_clip towers and logit scale."""
    if not isinstance(model.image_tower, OpenClipImageTower) or not isinstance(model.text_tower, OpenClipTextTower):
        raise VLForgeError(f"Hugging Face CLIP export needs open_clip towers, got {type(model.image_tower).__name__} "
                           f"and {type(model.text_tower).__name__}")
    if model.logit_bias is not None:
        raise VLForgeError("the model has a SigLIP logit bias; CLIPModel has none (export it with --format open_clip)")
    state = hf_vision_state_dict(model.image_tower.visual) | hf_text_state_dict(model.text_tower.text)
    state["logit_scale"] = model.logit_scale.detach().reshape(())
    target = CLIPModel(hf_clip_config(config))
    missing, unexpected = target.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise VLForgeError(f"the converted weights do not fit CLIPModel (missing {missing[:3]}, unexpected "
                           f"{unexpected[:3]})")
    return target.eval()


def clip_tokenizer(context_length: int) -> CLIPTokenizer:
    """A ``CLIPTokenizer`` with open_clip's bundled BPE (vocabulary, merges, ``<start_of_text>`` /
    ``<end_of_text>``), at most ``context_length`` tokens. It pads with the end-of-text token, as Hugging Face CLIP
    tokenizers do, where open_clip pads with 0: under the causal mask and end-of-text pooling padding never changes
    the text embedding."""
    bpe = SimpleTokenizer()
    merges = [" ".join(pair) for pair, _ in sorted(bpe.bpe_ranks.items(), key=lambda item: item[1])]
    with tempfile.TemporaryDirectory() as folder:
        vocab, merges_file = Path(folder) / "vocab.json", Path(folder) / "merges.txt"
        vocab.write_text(json.dumps(bpe.encoder), encoding="utf-8")
        merges_file.write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
        end = bpe.decoder[EOS_ID]
        return CLIPTokenizer(str(vocab), str(merges_file), model_max_length=context_length,
                             bos_token=bpe.decoder[BOS_ID], eos_token=end, unk_token=end, pad_token=end)


def export_hf_clip(model: ContrastiveModel, out_dir: str | os.PathLike, config: dict[str, Any],
                   mean: tuple[float, ...] = CLIP_MEAN, std: tuple[float, ...] = CLIP_STD,
                   inputs: Sequence[str | os.PathLike] = ()) -> Path:
    """Write ``model`` as a Hugging Face CLIP folder with tokenizer and processor (module docstring; atomically,
    never onto one of ``inputs``)."""
    clip = to_hf_clip(model, config)
    processor = CLIPProcessor(image_processor=clip_image_processor(clip.config.vision_config.image_size, mean, std),
                              tokenizer=clip_tokenizer(clip.config.text_config.max_position_embeddings))
    with atomic_folder(out_dir, inputs) as out:
        clip.save_pretrained(out)
        processor.save_pretrained(out)
    return Path(out_dir)


def export_hf_clip_checkpoint(checkpoint: str | os.PathLike, out_dir: str | os.PathLike,
                              run_config: str | os.PathLike | None = None) -> Path:
    """Export the CLIP of a ContrastiveLitModule checkpoint (the towers' open_clip configs read from the run
    config)."""
    model, network = model_from_checkpoint(checkpoint, run_config)
    image_model, text_model = tower_model(network, "image_tower"), tower_model(network, "text_tower")
    if image_model is None or text_model is None:
        raise VLForgeError(f"checkpoint {checkpoint}: the run config names no open_clip model for both towers")
    return export_hf_clip(model, out_dir, open_clip_model_config(image_model, text_model),
                          inputs=[checkpoint, run_config])
