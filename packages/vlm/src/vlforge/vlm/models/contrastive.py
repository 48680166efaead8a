"""The contrastive image-text model: an image tower, a text tower, a learnable temperature (and SigLIP's bias)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

MAX_LOGIT_SCALE = math.log(100.0)  # open_clip clamps exp(t) at 100


class ContrastiveModel(nn.Module):
    """Normalised image and text embeddings plus ``logit_scale`` = exp(t) (t learnable, clamped at log 100) and an
    optional learnable ``logit_bias`` (SigLIP: init scale log 10, bias -10)."""

    def __init__(self, image_tower: nn.Module, text_tower: nn.Module, init_logit_scale: float = math.log(1 / 0.07),
                 init_logit_bias: float | None = None) -> None:
        super().__init__()
        self.image_tower, self.text_tower = image_tower, text_tower
        self.logit_scale = nn.Parameter(torch.tensor(float(init_logit_scale)))
        self.logit_bias = None if init_logit_bias is None else nn.Parameter(torch.tensor(float(init_logit_bias)))

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        return self.text_tower.tokenize(texts)

    @property
    def text_tokenizer(self) -> Callable[[list[str]], dict[str, torch.Tensor]]:
        """``tokenize`` as a callable that holds none of the weights, for a DataLoader's workers."""
        return self.text_tower.text_tokenizer

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.image_tower(images), dim=-1)

    def encode_text(self, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.normalize(self.text_tower(tokens), dim=-1)

    def scale(self) -> torch.Tensor:
        return self.logit_scale.clamp(max=MAX_LOGIT_SCALE).exp()

    def forward(self, images: torch.Tensor, tokens: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encode_image(images), self.encode_text(tokens)
