"""Loading a CLIP from whatever a user points at, for evaluation, scoring, export and rewards (no Lightning).

A CLIP here is a module with ``encode_image(images)``, ``tokenize(texts)`` and ``encode_text(tokens)`` returning
normalised features (``ContrastiveModel``, ``BlipPretrainingModel``). :func:`load_clip` accepts

- a Lightning checkpoint (``.ckpt`` file or DeepSpeed ZeRO folder) of a vlm run: the network ``model`` of its
  LitModule, built from the run's config.yaml (found by the run folder layout, vlforge.common.runs, or
  ``run_config``) and filled from the checkpoint;
- a vlforge export folder (config.json + model.safetensors, vlforge.common.checkpoint);
- an open_clip folder (open_clip_config.json + weights, e.g. ``vlforge-vlm export --format open_clip``);
- a weights file of an open_clip config named by ``open_clip_model`` (safetensors, or a torch file read with
  weights_only=True; a ``state_dict`` entry and ``module.`` prefixes, as open_clip's training writes them, are
  accepted).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from torch import nn

from vlforge.common.checkpoint import CONFIG_FILE as EXPORT_CONFIG_FILE
from vlforge.common.checkpoint import instantiate, load_exported, read_checkpoint_state_dict
from vlforge.common.errors import VLForgeError
from vlforge.common.runs import find_run_config
from vlforge.vlm.open_clip_export import CONFIG_FILE as OPEN_CLIP_CONFIG_FILE
from vlforge.vlm.open_clip_export import LOCAL_DIR, OpenClipContrastiveModel


def load_clip(checkpoint: str | os.PathLike, run_config: str | os.PathLike | None = None, *,
              open_clip_model: str | None = None) -> nn.Module:
    """The CLIP of ``checkpoint`` (any of the module docstring's forms), in train mode as built."""
    path = Path(checkpoint)
    if open_clip_model is not None:
        if not path.is_file():
            raise VLForgeError(f"CLIP checkpoint {path}: no such file (a weights file of {open_clip_model!r})")
        import vlforge.common.presets  # noqa: F401 - registers vlforge's tiny open_clip configs

        return OpenClipContrastiveModel(open_clip_model, pretrained=str(path))
    if path.is_dir() and (path / OPEN_CLIP_CONFIG_FILE).is_file():
        return OpenClipContrastiveModel(f"{LOCAL_DIR}{path}")
    if path.is_dir() and (path / EXPORT_CONFIG_FILE).is_file():
        module = load_exported(path)
        return module if hasattr(module, "encode_image") else module.model
    return model_from_checkpoint(path, run_config)[0]


def model_from_checkpoint(checkpoint: str | os.PathLike, run_config: str | os.PathLike | None = None,
                          ) -> tuple[nn.Module, dict[str, Any]]:
    """The network (``model``) of a Lightning checkpoint of ContrastiveLitModule (or any LitModule holding it
    as ``model``), built from the run's saved config (``run_config``, else the run folder's config.yaml) and
    filled from the checkpoint; returns it with its ``{"class_path", "init_args"}`` config."""
    if not Path(checkpoint).exists():
        raise VLForgeError(f"checkpoint {checkpoint}: no such file or folder")
    config_path = Path(run_config) if run_config is not None else find_run_config(checkpoint)
    run = yaml.safe_load(Path(config_path).read_text()) or {}
    network = ((run.get("model") or {}).get("init_args") or {}).get("model")
    if not isinstance(network, dict) or "class_path" not in network:
        raise VLForgeError(f"config {config_path}: no model.init_args.model.class_path (the network to load)")
    model = instantiate(network)
    state = {k.removeprefix("model."): v for k, v in read_checkpoint_state_dict(checkpoint).items()
             if k.startswith("model.")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise VLForgeError(f"checkpoint {checkpoint}: does not fit the network of {config_path} "
                           f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    return model, network
