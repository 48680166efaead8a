"""open_clip interoperability: a trained ContrastiveModel with open_clip towers exported in open_clip's own
format, and a ContrastiveModel initialised from any open_clip checkpoint.

Export folder (open_clip's hub layout, loaded by
``open_clip.create_model_and_transforms("local-dir:<folder>")``)::

    open_clip_config.json         {"model_cfg": {embed_dim, vision_cfg, text_cfg, ...}, "preprocess_cfg":
    {...}}
    open_clip_model.safetensors   the open_clip CLIP (or CustomTextCLIP) state dict

Key mapping between the two: ``image_tower.visual.*`` <-> ``visual.*``; ``text_tower.text.*`` <-> the CLIP's
top-level text keys (``token_embedding``, ``transformer``, ``ln_final``, ...), or ``text.*`` for a
CustomTextCLIP
(``custom_text`` or a Hugging Face text tower); ``logit_scale`` / ``logit_bias`` unchanged.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import open_clip
import torch
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from open_clip.model import CLIP, CustomTextCLIP
from safetensors.torch import save_file

from vlforge.common.atomic_file import atomic_folder
from vlforge.common.errors import VLForgeError
from vlforge.vlm.models import ContrastiveModel, OpenClipImageTower, OpenClipTextTower
from vlforge.vlm.models.open_clip_towers import open_clip_config

CONFIG_FILE = "open_clip_config.json"
WEIGHTS_FILE = "open_clip_model.safetensors"
LOCAL_DIR = "local-dir:"


def open_clip_model_config(image_model: str | dict[str, Any], text_model: str | dict[str, Any] | None = None,
                           init_logit_bias: float | None = None) -> dict[str, Any]:
    """One open_clip model config from the image tower's config (its ``vision_cfg``, ``embed_dim``, ...) and
    the text tower's (its ``text_cfg``); each a registered open_clip name or a config dict."""
    config = open_clip_config(image_model)
    if text_model is not None:
        text = open_clip_config(text_model)
        if int(text["embed_dim"]) != int(config["embed_dim"]):
            raise VLForgeError(f"image tower embed_dim {config['embed_dim']} != text tower embed_dim "
                               f"{text['embed_dim']}")
        config["text_cfg"] = text["text_cfg"]
        for key in ("custom_text", "quick_gelu"):
            if key in text:
                config[key] = text[key]
    if init_logit_bias is not None:
        config["init_logit_bias"] = float(init_logit_bias)
    return config


def _is_custom_text(config: dict[str, Any]) -> bool:
    return bool(config.get("custom_text")) or "hf_model_name" in config.get("text_cfg", {})


def _text_prefix(config: dict[str, Any]) -> str:
    return "text." if _is_custom_text(config) else ""


def to_open_clip(model: ContrastiveModel, config: dict[str, Any]) -> CLIP | CustomTextCLIP:
    """An open_clip CLIP (CustomTextCLIP for custom text configs) of ``config`` with ``model``'s weights."""
    image, text = model.image_tower, model.text_tower
    if not isinstance(image, OpenClipImageTower) or not isinstance(text, OpenClipTextTower):
        raise VLForgeError(f"open_clip export needs open_clip towers, got {type(image).__name__} and "
                           f"{type(text).__name__}")
    model_cfg = {k: v for k, v in config.items() if k != "custom_text"}
    if (model.logit_bias is None) != ("init_logit_bias" not in model_cfg):
        raise VLForgeError("the model's logit bias and the config's init_logit_bias must both be set or both "
                           "unset")
    target = (CustomTextCLIP if _is_custom_text(config) else CLIP)(**model_cfg)
    prefix = _text_prefix(config)
    state = {f"visual.{k}": v for k, v in model.image_tower.visual.state_dict().items()}
    state.update({f"{prefix}{k}": v for k, v in model.text_tower.text.state_dict().items()})
    state["logit_scale"] = model.logit_scale.detach().reshape(target.logit_scale.shape)
    if model.logit_bias is not None:
        state["logit_bias"] = model.logit_bias.detach().reshape(target.logit_bias.shape)
    try:
        target.load_state_dict(state, strict=True)
    except RuntimeError as err:
        detail = [line.strip() for line in str(err).splitlines() if line.strip()][-1]
        raise VLForgeError(f"the model's weights do not fit open_clip's {type(target).__name__} of this "
                           f"config ({detail})") from None
    return target


def export_open_clip(model: ContrastiveModel, out_dir: str | os.PathLike, config: dict[str, Any],
                     mean: tuple[float, ...] = OPENAI_DATASET_MEAN,
                     std: tuple[float, ...] = OPENAI_DATASET_STD, inputs: Sequence[str | os.PathLike] = ()) -> Path:
    """Write ``model`` in open_clip's format into ``out_dir`` (see the module docstring; atomically, never onto
    one of ``inputs``: ``common.atomic_file.atomic_folder``); returns ``out_dir``. ``config``: the open_clip model
    config (:func:`open_clip_model_config`); ``mean`` / ``std``: the image normalisation the model was trained with
    (vlforge's data uses open_clip's OpenAI defaults)."""
    open_clip_model = to_open_clip(model, config)
    with atomic_folder(out_dir, inputs) as out:
        state = {k: v.detach().cpu().contiguous() for k, v in open_clip_model.state_dict().items()}
        save_file(state, str(out / WEIGHTS_FILE))
        record = {"model_cfg": config, "preprocess_cfg": {"mean": list(mean), "std": list(std)}}
        (out / CONFIG_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return Path(out_dir)


def tower_model(network: dict[str, Any], tower: str) -> str | dict[str, Any] | None:
    """The open_clip model (name or config) of ``tower`` ("image_tower" / "text_tower") in a network config."""
    return (((network.get("init_args") or {}).get(tower) or {}).get("init_args") or {}).get("model")


def export_open_clip_checkpoint(checkpoint: str | os.PathLike, out_dir: str | os.PathLike,
                                run_config: str | os.PathLike | None = None) -> Path:
    """Export the CLIP of a Lightning checkpoint (towers' open_clip configs read from the run config)."""
    from vlforge.vlm.loading import model_from_checkpoint  # loading reads open_clip folders with this module

    model, network = model_from_checkpoint(checkpoint, run_config)
    image_model, text_model = tower_model(network, "image_tower"), tower_model(network, "text_tower")
    if image_model is None or text_model is None:
        raise VLForgeError(f"checkpoint {checkpoint}: the run config names no open_clip model for both "
                           "towers")
    bias = None if model.logit_bias is None else float(model.logit_bias.detach())
    return export_open_clip(model, out_dir, open_clip_model_config(image_model, text_model, bias),
                            inputs=[checkpoint, run_config])


class OpenClipContrastiveModel(ContrastiveModel):
    """A ContrastiveModel initialised from an open_clip checkpoint (same parameters and state-dict keys as any
    ContrastiveModel with open_clip towers).

    ``model_name``: a registered open_clip name (``ViT-B-16``), ``local-dir:<folder>`` (an export of
    :func:`export_open_clip` or any open_clip hub folder) or ``hf-hub:<repo>``; ``pretrained``: with a
    registered
    name, a pretrained tag (``laion2b_s34b_b88k``, needs the hub) or a local weights file. Files are read with
    ``torch.load(weights_only=True)`` or safetensors.
    """

    def __init__(self, model_name: str, pretrained: str | None = None, cache_dir: str | None = None) -> None:
        folder = Path(model_name.removeprefix(LOCAL_DIR))
        if model_name.startswith(LOCAL_DIR) and not (folder / CONFIG_FILE).is_file():
            raise VLForgeError(f"open_clip folder {folder}: no {CONFIG_FILE}")
        if pretrained is not None and not pretrained.strip():
            pretrained = None
        try:
            source = open_clip.create_model(model_name, pretrained=pretrained, cache_dir=cache_dir,
                                            weights_only=True, require_pretrained=True)
        except (RuntimeError, ValueError, FileNotFoundError) as err:
            raise VLForgeError(f"open_clip model {model_name!r} (pretrained={pretrained!r}): "
                               f"{str(err).splitlines()[0]}") from None
        bias = None if source.logit_bias is None else float(source.logit_bias.detach().reshape(-1)[0])
        scale = float(source.logit_scale.detach().reshape(-1)[0])
        super().__init__(OpenClipImageTower(model_name), OpenClipTextTower(model_name),
                         init_logit_scale=scale, init_logit_bias=bias)
        prefix = "text." if isinstance(source, CustomTextCLIP) else ""
        state: dict[str, torch.Tensor] = {}
        for key, value in source.state_dict().items():
            if key.startswith("visual."):
                state["image_tower." + key] = value
            elif key in ("logit_scale", "logit_bias"):
                state[key] = value.reshape(())
            else:
                state["text_tower.text." + key.removeprefix(prefix)] = value
        self.load_state_dict(state, strict=True)
