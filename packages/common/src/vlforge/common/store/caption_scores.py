"""Writing per-caption scores into a caption store (``Caption.scores``, the record schema's slot): the loop shared by
every scorer (the CLIP score of vlforge.vlm.store_scoring, the CHAIR_i of vlforge.captioner.store_scoring).

A scorer has ``key`` (the score it writes; a caption that has it is skipped, counted, unless ``rescore``),
``needs_images`` and ``score(items)``: for each (record, image or None, caption) the score entries to merge into the
caption's scores. Resumable and idempotent: captions are scored in batches, each written in one store transaction.
An image that cannot be loaded is skipped and counted, its record named in the log; empty captions are counted,
not scored. Progress: a bar in a terminal, a status line per interval in a log (``<key>: done/total images
...``, vlforge.common.progress).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from PIL import Image

from vlforge.common.errors import VLForgeError
from vlforge.common.progress import track
from vlforge.common.records import Caption, ImageRecord
from vlforge.common.store.lmdb_store import CaptionStore

log = logging.getLogger(__name__)

ScoreItem = tuple[ImageRecord, Image.Image | None, Caption]


class CaptionScorer(Protocol):
    key: str
    needs_images: bool

    def score(self, items: Sequence[ScoreItem]) -> list[dict[str, Any]]: ...


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


def score_store(store_path: str | os.PathLike, scorer: CaptionScorer, *, sources: Sequence[str] | None = None,
                split: str | None = None, batch_size: int = 64, rescore: bool = False) -> ScoreSummary:
    """Score every caption of ``sources`` (default: all) on ``split`` (default: all) of the store; see the module
    docstring."""
    if batch_size < 1:
        raise VLForgeError(f"batch_size must be >= 1, got {batch_size}")
    summary = ScoreSummary()
    wanted = set(sources) if sources else None
    pending: list[ScoreItem] = []
    with CaptionStore(store_path, readonly=False) as store:
        counts = store.counts()
        if split is not None and split not in counts["splits"]:
            raise VLForgeError(f"store {store_path} has no split {split!r} (splits: {', '.join(counts['splits'])})")
        total = counts["images"] if split is None else counts["splits"][split]
        missing = sorted(wanted - set(counts["by_source"])) if wanted else []
        if missing:
            raise VLForgeError(f"store {store_path} has no captions of source {missing[0]!r}")
        for record in track(store.iter_records(split=split), scorer.key, total, "images"):
            summary.images += 1
            captions: list[Caption] = []
            for caption in record.captions:
                if wanted is not None and caption.source not in wanted:
                    continue
                if not caption.text.strip():
                    summary.empty += 1
                elif scorer.key in caption.scores and not rescore:
                    summary.already_scored += 1
                else:
                    captions.append(caption)
            if captions:
                image = None
                if scorer.needs_images:
                    try:
                        image = store.load_image(record)
                    except VLForgeError as err:
                        summary.failed_images += 1
                        log.warning("record %r: image skipped (%s)", record.image_id, err)
                        continue
                pending += [(record, image, caption) for caption in captions]
            if len(pending) >= batch_size:
                _write_batch(store, scorer, pending, summary)
                pending = []
        if pending:
            _write_batch(store, scorer, pending, summary)
    return summary


def _write_batch(store: CaptionStore, scorer: CaptionScorer, pending: list[ScoreItem], summary: ScoreSummary) -> None:
    updates: dict[str, dict[tuple[str, str, str], dict[str, Any]]] = {}
    for (record, _, caption), entries in zip(pending, scorer.score(pending), strict=True):
        updates.setdefault(record.image_id, {})[caption.key()] = entries
        summary.sources[caption.source] = summary.sources.get(caption.source, 0) + 1
    store.set_caption_scores(updates)
    summary.scored += len(pending)
