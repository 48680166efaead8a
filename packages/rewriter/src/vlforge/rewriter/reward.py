"""The PPO reward of the query rewriter (query-rewriter paper §3.4, Eq. 4), from the frozen retriever:

    r(x, y) = scale · (s_clip(y, v_x) − s_clip(x, v_x)),   scale = 20 in the paper

with v_x the right image of query x and s_clip the cosine of the retriever's normalised embeddings. The retriever
(a vlforge-vlm checkpoint) and the image features of ``split`` (cached beside the store,
:mod:`vlforge.rewriter.embedding_cache`) load on first use, so a config builds without them. A rewrite whose
image is missing from the cache, or whose score is not finite, gets a NaN reward (the caller skips and counts it).
"""

from __future__ import annotations

import torch

from vlforge.common.errors import VLForgeError
from vlforge.rewriter.embedding_cache import cached_image_index
from vlforge.rewriter.ppo import REWARD_SCALE, retrieval_reward
from vlforge.rewriter.retriever import ImageIndex, Retriever


class RetrievalReward:
    """Eq. 4 with the retriever of ``checkpoint`` over the images of ``store`` / ``split``."""

    def __init__(self, checkpoint: str, store: str, split: str, scale: float = REWARD_SCALE,
                 run_config: str | None = None, image_size: int | None = None, batch_size: int = 256) -> None:
        self.checkpoint, self.store, self.split = checkpoint, store, split
        self.scale, self.run_config, self.image_size, self.batch_size = scale, run_config, image_size, batch_size
        self.retriever: Retriever | None = None
        self.index: ImageIndex | None = None

    def load(self, device: torch.device | str = "cpu") -> None:
        """Load the frozen retriever on ``device`` and the split's image features (once)."""
        if self.retriever is not None:
            return
        from vlforge.vlm.loading import load_clip

        model = load_clip(self.checkpoint, self.run_config).to(device)
        image_size = self.image_size or getattr(getattr(model, "image_tower", None), "image_size", None)
        if image_size is None:
            raise VLForgeError(f"retriever {self.checkpoint}: cannot tell its image size; set image_size")
        self.index, _ = cached_image_index(model, self.store, self.split, self.checkpoint, int(image_size),
                                           self.batch_size)
        self.retriever = Retriever(model, self.batch_size)

    def __call__(self, rewrites: list[str], queries: list[str], image_ids: list[str]) -> torch.Tensor:
        """r(x, y) per rollout [B] (float32, CPU); NaN where the image is not in the cache."""
        self.load()
        known = [self.index is not None and i in self.index.position for i in image_ids]
        rewards = torch.full((len(rewrites),), float("nan"))
        rows = [k for k, ok in enumerate(known) if ok]
        if rows:
            ids = [image_ids[k] for k in rows]
            rewrite_scores = self.retriever.scores([rewrites[k] for k in rows], self.index, ids)
            query_scores = self.retriever.scores([queries[k] for k in rows], self.index, ids)
            rewards[rows] = retrieval_reward(rewrite_scores, query_scores, self.scale)
        return rewards
