"""Tiny open_clip model configs (ViT image tower + transformer text tower), registered with open_clip by name.

The configs are open_clip model-config JSON files shipped in ``open_clip_configs/`` (one file per name, as open_clip
ships its own); importing this module registers the folder through open_clip's public ``add_model_config``, so
``open_clip.create_model(name)`` and ``open_clip.get_tokenizer(name)`` work on every name of
``TINY_OPEN_CLIP_CONFIGS``: "vlforge-tiny-vit-64" (ShapesWorld's default 64 px: 64 patches) and
"vlforge-tiny-vit-32" (32 px images for the fastest tests: 16 patches). The text tower uses open_clip's bundled
CLIP BPE (vocab 49408), so no download is needed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import open_clip

from vlforge.common.errors import VLForgeError

CONFIG_DIR = Path(__file__).with_name("open_clip_configs")
TINY_OPEN_CLIP_CONFIGS: dict[str, dict[str, Any]] = {
    path.stem: json.loads(path.read_text(encoding="utf-8")) for path in sorted(CONFIG_DIR.glob("*.json"))}


def register_tiny_open_clip_configs() -> None:
    """Register ``CONFIG_DIR`` with ``open_clip.add_model_config`` unless every tiny name is already known."""
    if not set(TINY_OPEN_CLIP_CONFIGS) <= set(open_clip.list_models()):
        open_clip.add_model_config(CONFIG_DIR)


def build_open_clip(model_name: str = "vlforge-tiny-vit-64"):
    """A randomly initialised open_clip ``CLIP`` for a registered config name, and its tokenizer."""
    if model_name not in open_clip.list_models():
        raise VLForgeError(f"model.model_name {model_name!r} is not an open_clip config "
                           f"(tiny ones: {', '.join(TINY_OPEN_CLIP_CONFIGS)})")
    return open_clip.create_model(model_name, pretrained=None), open_clip.get_tokenizer(model_name)


register_tiny_open_clip_configs()
