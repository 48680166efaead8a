"""Named tiny presets: YAML files in ``vlforge/common/configs/presets`` built into (model, processor or tokenizer).

A preset YAML has ``family`` (a key of ``FAMILIES``), ``seed`` (random init), optional ``tokenizer`` (arguments of
``shapes_tokenizer``) and ``model`` (keyword arguments of the family's builder). Unknown keys are an error naming
the key and the file.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import yaml

from vlforge.common.atomic_file import write_atomically
from vlforge.common.errors import VLForgeError
from vlforge.common.presets.blip import build_blip
from vlforge.common.presets.llava import build_llava
from vlforge.common.presets.open_clip_models import build_open_clip
from vlforge.common.presets.qwen2_vl import build_qwen2_vl
from vlforge.common.presets.text_lm import build_gpt2, build_llama
from vlforge.common.presets.tokenizer import shapes_tokenizer

FAMILIES: dict[str, Callable[..., tuple[Any, Any]]] = {
    "llava": build_llava,
    "qwen2_vl": build_qwen2_vl,
    "blip": build_blip,
    "llama": build_llama,
    "gpt2": build_gpt2,
    "open_clip": build_open_clip,
}
_TOP_LEVEL_KEYS = {"family", "seed", "tokenizer", "model", "description"}
_PRESET_PACKAGE = "vlforge.common.configs.presets"


def preset_names() -> list[str]:
    """The names of the shipped presets (their YAML file stems)."""
    files = resources.files(_PRESET_PACKAGE).iterdir()
    return sorted(f.name.removesuffix(".yaml") for f in files if f.name.endswith(".yaml"))


def preset_path(name_or_yaml: str | os.PathLike) -> Path:
    """The YAML file of a shipped preset name, or ``name_or_yaml`` itself when it is a path to a YAML file."""
    text = str(name_or_yaml)
    if text.endswith((".yaml", ".yml")):
        path = Path(text)
        if not path.is_file():
            raise VLForgeError(f"preset file {text} does not exist")
        return path
    if text not in preset_names():
        raise VLForgeError(f"unknown preset {text!r}; shipped presets: {', '.join(preset_names())}")
    return Path(str(resources.files(_PRESET_PACKAGE) / f"{text}.yaml"))


def load_preset_config(name_or_yaml: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a preset YAML (keys, family, builder arguments); returns the plain dict."""
    path = preset_path(name_or_yaml)
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise VLForgeError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(config, dict):
        raise VLForgeError(f"{path}: a preset must be a mapping with keys {sorted(_TOP_LEVEL_KEYS)}")
    unknown = set(config) - _TOP_LEVEL_KEYS
    if unknown:
        raise VLForgeError(f"{path}: unknown key {sorted(unknown)[0]!r} (allowed: {sorted(_TOP_LEVEL_KEYS)})")
    family = config.get("family")
    if family not in FAMILIES:
        raise VLForgeError(f"{path}: key 'family' is {family!r}, expected one of {sorted(FAMILIES)}")
    parameters = inspect.signature(FAMILIES[family]).parameters
    allowed = set(parameters) - {"tokenizer"}
    unknown = set(config.get("model") or {}) - allowed
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())  # checked by the builder
    if unknown and not takes_any:
        raise VLForgeError(f"{path}: unknown key 'model.{sorted(unknown)[0]}' for family {family} "
                           f"(allowed: {sorted(allowed)})")
    allowed = set(inspect.signature(shapes_tokenizer).parameters) - {"cache_dir"}
    unknown = set(config.get("tokenizer") or {}) - allowed
    if unknown:
        raise VLForgeError(f"{path}: unknown key 'tokenizer.{sorted(unknown)[0]}' (allowed: {sorted(allowed)})")
    return config


def build_preset(name_or_yaml: str | os.PathLike, cache_dir: str | os.PathLike | None = None,
                 seed: int | None = None) -> tuple[Any, Any]:
    """Build a preset by shipped name (e.g. ``"llava_tiny"``) or YAML path: ``(model, processor_or_tokenizer)``.

    Multimodal families return a transformers processor (image processor + the ShapesWorld BPE tokenizer + chat
    template); text LMs return the tokenizer; ``open_clip`` returns ``(model, tokenizer)`` of open_clip. The weights
    are a random init drawn with ``seed`` (default: the YAML's ``seed``) without touching the global RNG.
    ``cache_dir`` is where the trained tokenizer is cached (default: the user cache dir).
    """
    config = load_preset_config(name_or_yaml)
    builder = FAMILIES[config["family"]]
    kwargs = dict(config.get("model") or {})
    if "tokenizer" in inspect.signature(builder).parameters:
        kwargs["tokenizer"] = shapes_tokenizer(**(config.get("tokenizer") or {}), cache_dir=cache_dir)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.get("seed", 0) if seed is None else seed)
        try:
            return builder(**kwargs)
        except VLForgeError as exc:
            raise VLForgeError(f"{preset_path(name_or_yaml)}: {exc}") from None


def write_vision_from_preset(base: str | os.PathLike, vision_folder: str | os.PathLike, path: str | os.PathLike,
                             description: str, seed: int | None = None) -> Path:
    """Write a llava preset YAML at ``path``: the preset ``base`` with its vision tower started from the CLIP vision
    folder ``vision_folder`` (``model.vision_from``; the tower's own shape replaces ``vision``, ``image_size`` and
    ``patch_size``) and ``seed`` replacing the base's init seed when given. A captioner names it as
    ``source: preset:<path>``."""
    config = load_preset_config(base)
    if config["family"] != "llava":
        raise VLForgeError(f"preset {base}: a vision tower folder starts llava presets only "
                           f"(family {config['family']})")
    config = {**config, "description": description, **({"seed": seed} if seed is not None else {})}
    config["model"] = {k: v for k, v in (config.get("model") or {}).items()
                       if k not in ("vision", "image_size", "patch_size")}
    config["model"]["vision_from"] = str(Path(vision_folder).resolve())
    path = Path(path)
    write_atomically(path, yaml.safe_dump(config, sort_keys=False))
    return path
