"""open_clip image and text towers, built from any open_clip model config (a registered name or a config dict).

A tower here is a module with ``forward(inputs) -> [B, embed_dim]`` (unnormalised features). The text tower also
``tokenize``s strings (``text_tokenizer``: the same as a callable without the weights, which a DataLoader collate
can carry into its workers). The image tower holds open_clip's ``visual`` module; the text tower holds open_clip's
``TextTransformer`` as ``text``, whose keys are CLIP's top-level text keys, so an open_clip ``CLIP`` state dict
splits into the towers by prefix (``visual.`` / the rest) and joins back the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import open_clip
import torch
from open_clip.model import _build_text_tower, _build_vision_tower
from torch import nn

from vlforge.common.errors import VLForgeError


def open_clip_config(model: str | dict[str, Any]) -> dict[str, Any]:
    """The model config dict (embed_dim, vision_cfg, text_cfg, ...) of a registered open_clip name, or ``model``."""
    if isinstance(model, dict):
        config = dict(model)
    else:
        config = open_clip.get_model_config(model)
        if config is None:
            raise VLForgeError(f"open_clip model config {model!r} is not registered "
                               f"(known: {', '.join(open_clip.list_models()[:5])}, ...)")
    missing = {"embed_dim", "vision_cfg", "text_cfg"} - set(config)
    if missing:
        raise VLForgeError(f"open_clip model config lacks {sorted(missing)}")
    return config


class OpenClipImageTower(nn.Module):
    """open_clip's vision tower (ViT, ModifiedResNet or timm) projecting images to ``embed_dim``."""

    def __init__(self, model: str | dict[str, Any]) -> None:
        super().__init__()
        config = open_clip_config(model)
        self.embed_dim = int(config["embed_dim"])
        self.visual = _build_vision_tower(self.embed_dim, config["vision_cfg"], config.get("quick_gelu", False))

    @property
    def image_size(self) -> int:
        size = self.visual.image_size
        return int(size[0] if isinstance(size, (tuple, list)) else size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.visual(images)


class OpenClipTokenize:
    """Strings -> ``{"input_ids": [B, context_length]}`` with an open_clip tokenizer; holds no weights."""

    def __init__(self, tokenizer: Callable[[list[str]], torch.Tensor]) -> None:
        self.tokenizer = tokenizer

    def __call__(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return {"input_ids": self.tokenizer(texts)}


class OpenClipTextTower(nn.Module):
    """open_clip's text transformer; tokenizes with open_clip's tokenizer for the model (or a HF tokenizer dir)."""

    def __init__(self, model: str | dict[str, Any], tokenizer: str | None = None) -> None:
        super().__init__()
        config = open_clip_config(model)
        self.embed_dim = int(config["embed_dim"])
        self.text = _build_text_tower(self.embed_dim, config["text_cfg"], config.get("quick_gelu", False))
        self.context_length = int(self.text.context_length)
        if tokenizer is not None:
            strings_to_ids = open_clip.tokenizer.HFTokenizer(tokenizer, context_length=self.context_length)
        elif isinstance(model, str):
            strings_to_ids = open_clip.get_tokenizer(model, context_length=self.context_length)
        else:
            strings_to_ids = open_clip.tokenizer.SimpleTokenizer(context_length=self.context_length)
        self.text_tokenizer = OpenClipTokenize(strings_to_ids)

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return self.text_tokenizer(texts)

    def forward(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.text(tokens["input_ids"])
