"""Writing CLIP scores into a caption store: ``scores["clip_score"]`` of each caption (the record schema's slot),
s(I, T) of vlforge.vlm.scoring, with ``scores["clip_score_by"]`` naming the CLIP that gave it. The loop (batches,
one transaction each, already scored captions skipped unless ``rescore``, unloadable images and empty captions
counted) is vlforge.common.store.caption_scores.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from vlforge.common.store.caption_scores import ScoreItem, ScoreSummary
from vlforge.common.store.caption_scores import score_store as score_captions_in_store
from vlforge.vlm.scoring import ClipScorer

SCORE_KEY = "clip_score"
SCORED_BY_KEY = "clip_score_by"


class ClipScoreWriter:
    """The CLIP score of each (image, caption) with the CLIP that gave it (a vlforge.common.store.caption_scores
    scorer)."""

    key, needs_images = SCORE_KEY, True

    def __init__(self, scorer: ClipScorer, scored_by: str) -> None:
        self.scorer, self.scored_by = scorer, scored_by

    def score(self, items: Sequence[ScoreItem]) -> list[dict[str, Any]]:
        values = self.scorer.similarity([image for _, image, _ in items], [c.text for _, _, c in items]).tolist()
        return [{SCORE_KEY: value, SCORED_BY_KEY: self.scored_by} for value in values]


def score_store(store_path: str | os.PathLike, scorer: ClipScorer, scored_by: str, *,
                sources: Sequence[str] | None = None, split: str | None = None, batch_size: int = 64,
                rescore: bool = False) -> ScoreSummary:
    """Score every caption of ``sources`` (default: all) on ``split`` (default: all) of the store with the CLIP of
    ``scorer``; ``scored_by`` is stored beside each score (e.g. the checkpoint's path)."""
    return score_captions_in_store(store_path, ClipScoreWriter(scorer, scored_by), sources=sources, split=split,
                                   batch_size=batch_size, rescore=rescore)
