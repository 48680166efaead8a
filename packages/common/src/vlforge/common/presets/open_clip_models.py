"""Tiny open_clip model configs (ViT image tower + transformer text tower), registered with open_clip by name.

Importing this module registers them (``register_tiny_open_clip_configs``), ``open_clip.create_model(name)`` and
``open_clip.get_tokenizer(name)`` work on every name of ``TINY_OPEN_CLIP_CONFIGS``. The text tower uses open_clip's
bundled CLIP BPE (vocab 49408), so no download is needed.
"""

from __future__ import annotations

from copy import deepcopy
from typing import Any

import open_clip
from open_clip import factory

from vlforge.common.errors import VLForgeError


def _tiny(image_size: int, patch_size: int) -> dict[str, Any]:
    return {
        "embed_dim": 64,
        "vision_cfg": {"image_size": image_size, "layers": 2, "width": 64, "head_width": 32, "mlp_ratio": 2.0,
                       "patch_size": patch_size},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2,
                     "mlp_ratio": 2.0},
    }


TINY_OPEN_CLIP_CONFIGS: dict[str, dict[str, Any]] = {
    "vlforge-tiny-vit-64": _tiny(image_size=64, patch_size=8),  # ShapesWorld default size: 64 patches
    "vlforge-tiny-vit-32": _tiny(image_size=32, patch_size=8),  # 32 px images for the fastest tests: 16 patches
}


def register_tiny_open_clip_configs() -> None:
    """Add ``TINY_OPEN_CLIP_CONFIGS`` to open_clip's model-config registry (idempotent).

    open_clip only registers JSON files through its public ``add_model_config``; entries are put into its registry
    dict (``open_clip.factory._MODEL_CONFIGS``) directly so nothing is written to disk.
    """
    for name, config in TINY_OPEN_CLIP_CONFIGS.items():
        factory._MODEL_CONFIGS[name] = deepcopy(config)


def build_open_clip(model_name: str = "vlforge-tiny-vit-64"):
    """A randomly initialised open_clip ``CLIP`` for a registered config name, and its tokenizer."""
    if model_name not in open_clip.list_models():
        raise VLForgeError(f"model.model_name {model_name!r} is not an open_clip config "
                           f"(tiny ones: {', '.join(TINY_OPEN_CLIP_CONFIGS)})")
    return open_clip.create_model(model_name, pretrained=None), open_clip.get_tokenizer(model_name)


register_tiny_open_clip_configs()
