"""Writing CHAIR_i into a caption store: ``scores["chair_i"]`` of each caption, the share (percent) of its shape
mentions that are not in the image's ShapesWorld scene graph (vlforge.common.metrics.chair), e.g. to pick a
captioner's most hallucinating sample as the rejected caption of a preference pair (``rejected: source:<name>``,
``score_above: 0``). The loop (batches, one transaction each, already scored captions skipped unless ``rescore``) is
vlforge.common.store.caption_scores.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from vlforge.common.errors import VLForgeError
from vlforge.common.metrics.chair import chair, scene_objects
from vlforge.common.store.caption_scores import ScoreItem, ScoreSummary, score_store

SCORE_KEY = "chair_i"


class ChairScoreWriter:
    """CHAIR_i of each caption against its record's scene graph (a vlforge.common.store.caption_scores scorer)."""

    key, needs_images = SCORE_KEY, False

    def score(self, items: Sequence[ScoreItem]) -> list[dict[str, Any]]:
        entries = []
        for record, _, caption in items:
            graph = record.meta.get("scene_graph")
            if graph is None:
                raise VLForgeError(f"record {record.image_id!r} has no scene graph: CHAIR scores ShapesWorld images")
            entries.append({SCORE_KEY: chair([caption.text], [scene_objects(graph)]).chair_i})
        return entries


def score_chair(store_path: str | os.PathLike, sources: Sequence[str], *, split: str | None = None,
                rescore: bool = False) -> ScoreSummary:
    """Write CHAIR_i into every caption of ``sources`` on ``split`` (default: all) of the store."""
    return score_store(store_path, ChairScoreWriter(), sources=sources, split=split, rescore=rescore)
