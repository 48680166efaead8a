"""Per-rank shard stores of a distributed generation run (DDP predict) and their merge into the main store.

Each rank writes the captions it generates into its own CaptionStore (``<shard_root>/<source>/rank<k>``),
so ranks never contend for the main store's write lock. A shard record carries the image's id, split, size and
image reference (so a shard is a complete store that ``vlforge-store merge`` could also take) and every caption of
that source the rank generated for the image (a captioner writes one, a query rewriter one per distinct rewrite of
the image's queries), but no meta; its info holds the rank's failures like the main store does.

``merge_shards`` folds shards into the main store with ``append_captions`` (one transaction per chunk),
skipping any image that already has a caption of that source, so a merge that is repeated after an
interruption, or two ranks that (against the sampler's contract) captioned the same image with different
sampled text, still leave one rank's captions per image. Failures are merged after the captions; a shard is
removed only when it has been merged entirely. (``vlforge.common.store.merge.merge_stores`` re-creates the
output's metadata and merges every caption; neither fits here.)
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable
from pathlib import Path

from vlforge.common.lm.generated_store import captioned_ids, failures, update_failures
from vlforge.common.records import Caption, ImageRecord
from vlforge.common.store import CaptionStore

MERGE_CHUNK = 1000


def default_shard_root(store_path: str | os.PathLike) -> Path:
    """``<store>.generation-shards`` beside the store directory."""
    path = Path(os.path.abspath(os.fspath(store_path)))
    return path.parent / f"{path.name}.generation-shards"


def shard_dir(shard_root: str | os.PathLike, name: str, rank: int) -> Path:
    """The shard store of source ``name`` on global rank ``rank`` (the name made filesystem-safe)."""
    return Path(shard_root) / re.sub(r"[^A-Za-z0-9_.-]", "_", name) / f"rank{rank}"


def shard_record(record: ImageRecord, captions: list[Caption]) -> ImageRecord:
    """The shard's copy of ``record``: same id, split, size and image reference; only the new captions."""
    return ImageRecord(
        image_id=record.image_id,
        split=record.split,
        width=record.width,
        height=record.height,
        captions=list(captions),
        image_path=record.image_path,
        image_bytes=record.image_bytes,
    )


def merge_shards(store_path: str | os.PathLike, shard_root: str | os.PathLike, name: str) -> int:
    """Merge every shard of source ``name`` under ``shard_root`` into the main store and remove it; returns
    the number of captions added."""
    folder = shard_dir(shard_root, name, 0).parent
    shards = sorted(p for p in folder.glob("rank*") if (p / "data.mdb").is_file()) if folder.is_dir() else []
    added = 0
    if not shards:
        return added
    with CaptionStore(store_path, readonly=False) as main:
        done: set[str] = set()
        for split in main.counts()["splits"]:
            done |= captioned_ids(main, split, name)
        for path in shards:
            with CaptionStore(path, readonly=True) as shard:
                pending: dict[str, list[Caption]] = {}
                for record in shard.iter_records(source=name):
                    if record.image_id not in done:
                        pending[record.image_id] = record.captions_by(source=name)
                        done.add(record.image_id)
                    if len(pending) >= MERGE_CHUNK:
                        added += main.append_captions(pending)
                        pending = {}
                added += main.append_captions(pending)
                failed = {k: v for k, v in failures(shard, name).items() if k not in done}
                update_failures(main, name, failed, done)
            shutil.rmtree(path)
    for empty in (folder, Path(shard_root)):
        if empty.is_dir() and not any(empty.iterdir()):
            empty.rmdir()
    return added


class ShardWriter:
    """One rank's side of a distributed generation run of source ``name`` into the store at ``store_path``: its
    shard store (``shard_dir``, created on the first write, its info naming the main store, the rank and ``info``),
    the writes of each batch, and the merge of every rank's shard (:func:`merge_shards`, rank 0 only)."""

    def __init__(self, store_path: str | os.PathLike, name: str, rank: int,
                 shard_root: str | os.PathLike | None = None, info: dict | None = None) -> None:
        self.store_path = os.path.abspath(os.fspath(store_path))
        self.root = Path(shard_root) if shard_root else default_shard_root(self.store_path)
        self.name, self.rank, self.info = name, rank, dict(info or {})
        self._shard: CaptionStore | None = None

    def merge(self) -> int:
        """Merge every rank's shard of the source into the main store; the number of captions added."""
        return merge_shards(self.store_path, self.root, self.name)

    def write(self, records: list[ImageRecord], captions: dict[str, list[Caption]], failed: dict[str, str],
              succeeded: Iterable[str]) -> None:
        """Store the generated ``captions`` (by image id) of ``records`` and the batch's failures in the shard."""
        if self._shard is None:
            path = shard_dir(self.root, self.name, self.rank)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._shard = CaptionStore.create(
                path, info={"generation_shard_of": self.store_path, **self.info, "rank": self.rank})
        self._shard.put_records([shard_record(r, captions[r.image_id]) for r in records if r.image_id in captions])
        update_failures(self._shard, self.name, failed, succeeded)

    def close(self) -> None:
        if self._shard is not None:
            self._shard.close()
            self._shard = None
