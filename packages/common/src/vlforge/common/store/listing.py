"""Finding records in a store: ids by split / source (all, the first N, or N at random), and the caption
breakdown by source and kind with length statistics per source (what ``vlforge-store ids / sample / stats`` show)."""

from __future__ import annotations

import random
from collections import defaultdict

from vlforge.common.errors import VLForgeError
from vlforge.common.store.lmdb_store import CaptionStore


def pick_ids(store: CaptionStore, split: str | None = None, source: str | None = None, limit: int | None = None,
             at_random: bool = False, seed: int = 0) -> list[str]:
    """Image ids (sorted) of ``split`` having a caption of ``source``; the first ``limit``, or with ``at_random``
    ``limit`` drawn without replacement by ``random.Random(seed)`` (in drawn order)."""
    if limit is not None and limit < 0:
        raise VLForgeError(f"--limit must be >= 0, got {limit}")
    if split is not None and split not in store.counts()["splits"]:
        raise VLForgeError(f"split {split!r} has no images in the store {store.path!r}")
    if source is None:
        ids = store.ids(split)
    else:
        ids = [r.image_id for r in store.iter_records(split=split, source=source)]
    if at_random:
        return random.Random(seed).sample(ids, min(len(ids), len(ids) if limit is None else limit))
    return ids if limit is None else ids[:limit]


def caption_breakdown(store: CaptionStore) -> dict:
    """{"by_source_kind": {source: {kind: captions}}, "lengths": {source: {count, mean, std, min, median, p90,
    max}}} over every caption, lengths in whitespace words (one scan of the store)."""
    from vlforge.common.metrics.caption_stats import length_stats  # the metrics package loads torch: only here

    by_source_kind: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    lengths: dict[str, list[int]] = defaultdict(list)
    for record in store.iter_records():
        for caption in record.captions:
            by_source_kind[caption.source][caption.kind] += 1
            lengths[caption.source].append(len(caption.text.split()))
    return {"by_source_kind": {s: dict(sorted(k.items())) for s, k in sorted(by_source_kind.items())},
            "lengths": length_stats(dict(sorted(lengths.items())))}
