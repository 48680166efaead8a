"""CLIP scores: the cosine similarity of an image's and a text's normalised CLIP embeddings,
s(I, T) = <f(I), g(T)> / (|f(I)| |g(T)|), as in CLIPScore (Hessel et al., 2021) before its rescaling
w * max(s, 0), and the "CLIP score" axis of the captioner analysis.

``ClipScorer(model)`` wraps any CLIP of vlforge.vlm.loading (``encode_image``, ``tokenize``, ``encode_text``);
evaluation, the captioner's analysis, ``vlforge-vlm score`` and rewards use it. No Lightning.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from open_clip.transform import image_transform
from PIL import Image
from torch import nn

from vlforge.common.errors import VLForgeError


class ClipScorer:
    """Batched CLIP embeddings and paired similarities of one model, on the model's device, without gradients.

    ``image_size``: the evaluation transform's size (open_clip's resize + centre crop + CLIP normalisation);
    default: the image tower's own size.
    """

    def __init__(self, model: nn.Module, image_size: int | None = None, batch_size: int = 256) -> None:
        self.model = model
        self.batch_size = batch_size
        self.image_size = image_size
        parameter = next(model.parameters(), None)
        self.device = parameter.device if parameter is not None else torch.device("cpu")

    def transform(self, image: Image.Image) -> torch.Tensor:
        """The evaluation transform of one PIL image: [3, H, W]."""
        if self.image_size is None:
            self.image_size = tower_image_size(self.model)
        if getattr(self, "_transform", None) is None:
            self._transform = image_transform(self.image_size, is_train=False)
        return self._transform(image.convert("RGB"))

    @torch.no_grad()
    def encode_images(self, images: Sequence[Image.Image] | torch.Tensor) -> torch.Tensor:
        """Normalised image features [N, D] (float32, CPU) of PIL images or an already transformed [N, 3, H, W]."""
        if not isinstance(images, torch.Tensor):
            if not images:
                return torch.empty(0, 0)
            images = torch.stack([self.transform(image) for image in images])
        chunks = [self.model.encode_image(images[i:i + self.batch_size].to(self.device)).float().cpu()
                  for i in range(0, len(images), self.batch_size)]
        return torch.cat(chunks)

    @torch.no_grad()
    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Normalised text features [N, D] (float32, CPU)."""
        chunks = []
        for start in range(0, len(texts), self.batch_size):
            tokens = self.model.tokenize(list(texts[start:start + self.batch_size]))
            chunks.append(self.model.encode_text({k: v.to(self.device) for k, v in tokens.items()}).float().cpu())
        return torch.cat(chunks) if chunks else torch.empty(0, 0)

    def similarity(self, images: Sequence[Image.Image] | torch.Tensor, texts: Sequence[str]) -> torch.Tensor:
        """s(I_i, T_i) for each pair i: [N] cosine similarities in [-1, 1]."""
        if len(images) != len(texts):
            raise VLForgeError(f"ClipScorer.similarity: {len(images)} images but {len(texts)} texts")
        if not len(texts):
            return torch.empty(0)
        return (self.encode_images(images) * self.encode_texts(texts)).sum(-1)


def tower_image_size(model: nn.Module) -> int:
    """The image size of the model's image tower (a VLForgeError when it does not say)."""
    size = getattr(getattr(model, "image_tower", None), "image_size", None)
    if size is None:
        raise VLForgeError("cannot tell the model's image size; pass the image size")
    return int(size)
