"""Merge stores into one: records merged by image id, captions deduplicated (CaptionStore.put_records semantics,
so the first store's split wins on a conflict), image roots handled so every path image stays loadable. A record
whose id the output already holds for a different image (compared by path, bytes or SHA-256 of the content) is
never merged onto it: it is left out and counted (``PutResult.image_conflicts``, ids in ``conflict_ids``).

Image roots: by default the output is RE-ROOTED at the deepest folder holding every input's image root and each
path is rewritten relative to it (it never gains a '..'); an output that already holds path images under another
root is refused.
With ``embed_images=True`` path images are read (safely, under their store's root) and embedded instead, so the
output does not depend on the input folders at all.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

from vlforge.common.errors import VLForgeError
from vlforge.common.progress import track
from vlforge.common.records import ImageRecord
from vlforge.common.store.images import read_image_file, resolve_image_path
from vlforge.common.store.lmdb_store import CaptionStore, PutResult


def merge_stores(out: str | os.PathLike, inputs: Sequence[str | os.PathLike], embed_images: bool = False,
                 batch_size: int = 1000) -> PutResult:
    out = os.fspath(out)
    if not inputs:
        raise VLForgeError("merge needs at least one input store")
    real_out = os.path.realpath(out)
    for path in inputs:
        if os.path.realpath(path) == real_out:
            raise VLForgeError(f"merge: input store {os.fspath(path)!r} is the output store")
    sources = [CaptionStore(path, readonly=True) for path in inputs]
    target = CaptionStore.create(out, info={"merged_from": [os.path.abspath(p) for p in inputs]})
    try:
        if not embed_images:
            _reroot_target(target, sources)
        total = PutResult()
        for source in sources:
            total += target.put_records(_relocated(source, target.image_root, embed_images), batch_size=batch_size)
        return total
    finally:
        for source in sources:
            source.close()
        target.close()


def _reroot_target(target: CaptionStore, sources: list[CaptionStore]) -> None:
    roots = [os.path.realpath(s.image_root) for s in sources if s.image_root]
    if not roots:
        return
    new_root = os.path.commonpath(roots)
    old_root = target.image_root
    if old_root and os.path.realpath(old_root) != new_root and any(r.image_path for r in target.iter_records()):
        raise VLForgeError(f"merge: output store {target.path!r} already holds path images under {old_root!r}; "
                           "merge into a new store or use --embed-images")
    target.set_info(image_root=new_root)


def _relocated(source: CaptionStore, new_root: str | None, embed: bool) -> Iterator[ImageRecord]:
    for record in track(source.iter_records(), f"merge {source.path}", source.counts()["images"], "records"):
        if record.image_path is None:
            yield record
            continue
        what = f"store {source.path!r} record {record.image_id!r}"
        if not source.image_root:
            raise VLForgeError(f"{what} has an image path but its store has no image root")
        full = resolve_image_path(source.image_root, record.image_path, what)
        if embed:
            record.image_bytes, record.image_path = read_image_file(full, what), None
        else:
            record.image_path = os.path.relpath(os.path.join(os.path.realpath(source.image_root), record.image_path),
                                                new_root)
        yield record
