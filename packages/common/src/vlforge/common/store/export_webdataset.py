"""WebDataset export: tar shards ``<prefix>-000000.tar, ...`` of samples ``<key>.<jpg|png|webp>``, ``<key>.txt``
(the caption) and ``<key>.json`` (image_id, split, width, height, the caption with source, kind, provenance and
scores, and the record's meta), one sample per (image, caption) pair, ``samples_per_shard`` samples per shard.

Keys are 9-digit sample numbers (as img2dataset writes them; a key never holds a dot). Beside the shards,
``sizes.json`` ({shard file: samples}) lets open_clip count the samples; the summary gives the brace pattern
(``<dir>/<prefix>-{000000..000012}.tar``) that open_clip's ``--train-data`` and ``webdataset.WebDataset`` take.
Members are written with a fixed mtime, so the same store gives byte-identical shards.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Iterator

from vlforge.common.atomic_file import write_atomically
from vlforge.common.errors import VLForgeError
from vlforge.common.records import ImageRecord
from vlforge.common.store.export_images import image_bytes, image_extension
from vlforge.common.store.export_select import ExportSummary
from vlforge.common.store.lmdb_store import CaptionStore

WEBDATASET_IMAGE_EXTENSIONS = (".jpg", ".png", ".webp")


def shard_pattern(out_dir: str, prefix: str, shards: int) -> str:
    """The brace pattern naming ``shards`` shards: ``out/prefix-{000000..000004}.tar`` (a single name for one)."""
    if shards == 1:
        return os.path.join(out_dir, f"{prefix}-000000.tar")
    return os.path.join(out_dir, f"{prefix}-{{000000..{shards - 1:06d}}}.tar")


def export_webdataset(store: CaptionStore, records: Iterator[ImageRecord], out: str, summary: ExportSummary,
                      samples_per_shard: int = 1000, prefix: str = "shard") -> None:
    if samples_per_shard < 1:
        raise VLForgeError(f"--samples-per-shard must be >= 1, got {samples_per_shard}")
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as err:
        raise VLForgeError(f"cannot create the shard folder {out!r}: {err.strerror or err}") from None
    sizes: dict[str, int] = {}
    shard: tarfile.TarFile | None = None
    key = 0
    try:
        for record in records:
            data = image_bytes(store, record)
            extension = image_extension(data)
            if extension not in WEBDATASET_IMAGE_EXTENSIONS:
                raise VLForgeError(f"record {record.image_id!r}: image is {extension}, not one of "
                                   f"{', '.join(WEBDATASET_IMAGE_EXTENSIONS)}")
            for caption in record.captions:
                if key % samples_per_shard == 0:
                    if shard is not None:
                        shard.close()
                    name = f"{prefix}-{len(sizes):06d}.tar"
                    shard = tarfile.open(os.path.join(out, name), "w", format=tarfile.USTAR_FORMAT)
                    sizes[name] = 0
                view = {"image_id": record.image_id, "split": record.split, "width": record.width,
                        "height": record.height, "caption": caption.to_dict(), "meta": record.meta}
                stem = f"{key:09d}"
                _add(shard, stem + extension, data)
                _add(shard, stem + ".txt", caption.text.encode("utf-8"))
                _add(shard, stem + ".json", json.dumps(view, ensure_ascii=False, sort_keys=True).encode("utf-8"))
                sizes[name] += 1
                key += 1
            summary.images += 1
            summary.captions += len(record.captions)
    finally:
        if shard is not None:
            shard.close()
    write_atomically(os.path.join(out, "sizes.json"), json.dumps(sizes, sort_keys=True))
    summary.files = sorted(sizes)
    summary.note = (f"{len(sizes)} shards of up to {samples_per_shard} samples: "
                    f"{shard_pattern(out, prefix, len(sizes))}" if sizes else "no samples: no shard written")


def _add(archive: tarfile.TarFile, name: str, payload: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(payload), 0, 0o644
    archive.addfile(info, io.BytesIO(payload))
