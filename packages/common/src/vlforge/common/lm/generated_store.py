"""The store side of generation, for any generated text that goes into a CaptionStore as a caption of ``source``
(captions of a captioner, a critic's rewritten captions, a rewriter's queries):

- which images of a split still need ``source`` (``pending_ids``: those without any caption of it, so an
  interrupted run resumes where it stopped and nothing is generated or stored twice);
- a generated text wrapped as a ``Caption`` with its provenance (``generated_caption``: the caller's provenance plus
  the time and the generator);
- the failures list in the store's info: ``info["generation_failures"][<source>][<image id>] = reason``; an image
  listed there has no caption of that source, so the next run retries it and removes it from the list when it
  succeeds;
- the sampling seed of a batch, independent of which run or rank generates it.

Per-rank shard stores of a DDP predict run and their merge are in :mod:`vlforge.common.lm.shards`.
"""

from __future__ import annotations

import datetime as _dt
import zlib
from collections.abc import Iterable
from typing import Any

from vlforge.common.errors import VLForgeError
from vlforge.common.records import Caption
from vlforge.common.store import CaptionStore

FAILURES_KEY = "generation_failures"


def captioned_ids(store: CaptionStore, split: str, source: str) -> set[str]:
    """Ids of the split's images that already have a caption (even an empty one) from ``source``."""
    return {r.image_id for r in store.iter_records(split=split, source=source)}


def pending_ids(store: CaptionStore, split: str, source: str, limit: int | None = None) -> list[str]:
    """Sorted ids among the split's first ``limit`` (sorted) images that ``source`` has not captioned."""
    ids = store.ids(split)
    if not ids:
        raise VLForgeError(f"split {split!r} has no images in the store {store.path!r}")
    ids = ids if limit is None else ids[:limit]
    done = captioned_ids(store, split, source)
    return [i for i in ids if i not in done]


def batch_seed(seed: int, first_image_id: str) -> int:
    """The sampling seed of a batch: independent of which run or rank generates it."""
    return (seed + zlib.crc32(first_image_id.encode("utf-8"))) % (2**63)


def now() -> str:
    """The provenance time stamp (UTC, seconds)."""
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def generated_caption(text: str, source: str, kind: str, provenance: dict[str, Any], generator: str,
                      time: str | None = None) -> Caption:
    """A generated text as a caption of ``source`` with ``provenance`` plus its time and generator."""
    return Caption(text=text, source=source, kind=kind,
                   provenance={**provenance, "time": time or now(), "generator": generator})


def failures(store: CaptionStore, source: str) -> dict[str, str]:
    """The images ``source`` could not caption in earlier runs (image id -> reason)."""
    return dict((store.info.get(FAILURES_KEY) or {}).get(source) or {})


def update_failures(store: CaptionStore, source: str, failed: dict[str, str], succeeded: Iterable[str]) -> None:
    """Record new failures of ``source`` and forget the ones that have now succeeded (one transaction)."""
    current, done = failures(store, source), set(succeeded)
    new = {k: v for k, v in current.items() if k not in done}
    new.update(failed)
    if new == current:
        return
    table: dict[str, Any] = dict(store.info.get(FAILURES_KEY) or {})
    table[source] = new
    store.set_info(**{FAILURES_KEY: table})
