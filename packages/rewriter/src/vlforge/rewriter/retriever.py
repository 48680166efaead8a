"""The frozen retriever of the query rewriter (query-rewriter paper §3.1, §3.4): a contrastive model that scores a
text against images, s_clip(text, v) = cosine of the normalised embeddings.

A model here is anything with ``encode_image(images)``, ``tokenize(texts)`` and ``encode_text(tokens)`` returning
normalised features (vlforge-vlm's ContrastiveModel, an open_clip folder loaded by vlforge-vlm). Image features of a
store split come from :mod:`vlforge.rewriter.embedding_cache`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vlforge.common.errors import VLForgeError


@dataclass
class ImageIndex:
    """Normalised image features [N, D] of one store split, row i belonging to ``image_ids[i]``."""

    image_ids: list[str]
    features: torch.Tensor

    def __post_init__(self) -> None:
        self.position = {image_id: i for i, image_id in enumerate(self.image_ids)}

    def row(self, image_id: str) -> int:
        if image_id not in self.position:
            raise VLForgeError(f"image {image_id!r} is not in the retriever's image cache")
        return self.position[image_id]


class Retriever:
    """A frozen contrastive model used to score and rank texts against an :class:`ImageIndex`."""

    def __init__(self, model: nn.Module, batch_size: int = 256) -> None:
        self.model = model.eval().requires_grad_(False)
        self.batch_size = batch_size

    @torch.no_grad()
    def encode_texts(self, texts: list[str]) -> torch.Tensor:
        """Normalised text features [N, D] (float32, on the CPU)."""
        device = next(self.model.parameters()).device
        chunks = []
        for start in range(0, len(texts), self.batch_size):
            tokens = self.model.tokenize(texts[start:start + self.batch_size])
            tokens = {k: v.to(device) for k, v in tokens.items()} if isinstance(tokens, dict) else tokens.to(device)
            chunks.append(self.model.encode_text(tokens).float().cpu())
        if not chunks:
            return torch.zeros(0, 0)
        return torch.cat(chunks)

    def scores(self, texts: list[str], index: ImageIndex, image_ids: list[str]) -> torch.Tensor:
        """s_clip(texts[k], image_ids[k]) for each k: [N]."""
        features = self.encode_texts(texts)
        rows = torch.tensor([index.row(i) for i in image_ids], dtype=torch.long)
        return (features * index.features[rows]).sum(dim=1)

    def ranks(self, texts: list[str], index: ImageIndex, image_ids: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(rank, score) of the right image per text: rank 1 is the top; an image tied with the right one counts
        above it (a tie is not a success). Returns two [N] tensors."""
        features = self.encode_texts(texts)
        rows = torch.tensor([index.row(i) for i in image_ids], dtype=torch.long)
        similarities = features @ index.features.T  # [N, M]
        right = similarities.gather(1, rows[:, None])
        others = torch.ones_like(similarities, dtype=torch.bool)
        others[torch.arange(len(texts)), rows] = False
        ranks = 1 + ((similarities >= right) & others).sum(dim=1)
        return ranks, right.squeeze(1)

    def top_images(self, text: str, index: ImageIndex, k: int) -> list[str]:
        """The ids of the k images the retriever ranks highest for ``text``."""
        similarities = (self.encode_texts([text]) @ index.features.T)[0]
        return [index.image_ids[i] for i in similarities.topk(min(k, len(index.image_ids))).indices.tolist()]
