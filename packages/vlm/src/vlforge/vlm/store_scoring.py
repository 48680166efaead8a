"""Writing CLIP scores into a caption store: ``scores["clip_score"]`` of each caption (the record schema's slot),
s(I, T) of vlforge.vlm.scoring, with ``scores["clip_score_by"]`` naming the CLIP that gave it.

Resumable and idempotent: captions are scored in batches, each written in one store transaction; a caption that
already has a ``clip_score`` is skipped (counted) unless ``rescore``. An image that cannot be loaded is skipped and
counted, its record named in the log; empty captions are counted, not scored. Progress: a bar in a terminal, a
status line per interval in a log (``clip scores: done/total images ...``, vlforge.common.progress).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from PIL import Image

from vlforge.common.errors import VLForgeError
from vlforge.common.progress import track
from vlforge.common.records import Caption, ImageRecord
from vlforge.common.store import CaptionStore
from vlforge.vlm.scoring import ClipScorer

SCORE_KEY = "clip_score"
SCORED_BY_KEY = "clip_score_by"

log = logging.getLogger(__name__)


@dataclass
class ScoreSummary:
    """What one scoring run did, counted."""

    images: int = 0
    scored: int = 0
    already_scored: int = 0
    empty: int = 0
    failed_images: int = 0
    sources: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def score_store(store_path: str | os.PathLike, scorer: ClipScorer, scored_by: str, *,
                sources: Sequence[str] | None = None, split: str | None = None, batch_size: int = 64,
                rescore: bool = False) -> ScoreSummary:
    """Score every caption of ``sources`` (default: all) on ``split`` (default: all) of the store; see the module
    docstring. ``scored_by`` is stored beside each score (e.g. the checkpoint's path)."""
    if batch_size < 1:
        raise VLForgeError(f"batch_size must be >= 1, got {batch_size}")
    summary = ScoreSummary()
    wanted = set(sources) if sources else None
    pending: list[tuple[ImageRecord, Image.Image, list[Caption]]] = []
    pending_captions = 0
    with CaptionStore(store_path, readonly=False) as store:
        counts = store.counts()
        if split is not None and split not in counts["splits"]:
            raise VLForgeError(f"store {store_path} has no split {split!r} (splits: {', '.join(counts['splits'])})")
        missing = sorted(wanted - set(counts["by_source"])) if wanted else []
        if missing:
            raise VLForgeError(f"store {store_path} has no captions of source {missing[0]!r}")
        total = counts["images"] if split is None else counts["splits"][split]
        for record in track(store.iter_records(split=split), "clip scores", total, "images"):
            summary.images += 1
            captions: list[Caption] = []
            for caption in record.captions:
                if wanted is not None and caption.source not in wanted:
                    continue
                if not caption.text.strip():
                    summary.empty += 1
                elif SCORE_KEY in caption.scores and not rescore:
                    summary.already_scored += 1
                else:
                    captions.append(caption)
            if captions:
                try:
                    image = store.load_image(record)
                except VLForgeError as err:
                    summary.failed_images += 1
                    log.warning("record %r: image skipped (%s)", record.image_id, err)
                    continue
                pending.append((record, image, captions))
                pending_captions += len(captions)
            if pending_captions >= batch_size:
                _write_batch(store, scorer, scored_by, pending, summary)
                pending, pending_captions = [], 0
        if pending:
            _write_batch(store, scorer, scored_by, pending, summary)
    return summary


def _write_batch(store: CaptionStore, scorer: ClipScorer, scored_by: str,
                 pending: list[tuple[ImageRecord, Image.Image, list[Caption]]], summary: ScoreSummary) -> None:
    images = [image for _, image, captions in pending for _ in captions]
    texts = [caption.text for _, _, captions in pending for caption in captions]
    values = iter(scorer.similarity(images, texts).tolist())
    updates: dict[str, dict[tuple[str, str, str], dict[str, object]]] = {}
    for record, _, captions in pending:
        for caption in captions:
            updates.setdefault(record.image_id, {})[caption.key()] = {SCORE_KEY: next(values), SCORED_BY_KEY: scored_by}
            summary.sources[caption.source] = summary.sources.get(caption.source, 0) + 1
    store.set_caption_scores(updates)
    summary.scored += len(texts)
