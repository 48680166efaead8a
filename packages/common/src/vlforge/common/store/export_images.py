"""Image files written by exports: a safe unique file name per record, and the encoded bytes of its image.

Path images are read through the store's root (never outside it) and copied as they are; embedded images are
written as they are stored. Nothing is re-encoded.
"""

from __future__ import annotations

import hashlib
import os
import re

from vlforge.common.errors import VLForgeError
from vlforge.common.records import ImageRecord
from vlforge.common.store.images import read_image_file, resolve_image_path
from vlforge.common.store.lmdb_store import CaptionStore


def image_file_name(record: ImageRecord, data: bytes) -> str:
    """The id if it is a plain name, else a sanitised id plus a hash of it; the extension follows the bytes."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", record.image_id) or "image"
    if safe != record.image_id:
        safe = f"{safe[:100]}_{hashlib.sha1(record.image_id.encode('utf-8')).hexdigest()[:10]}"
    return safe + image_extension(data)


def image_extension(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return ".png"
    if data.startswith(b"\xff\xd8"):
        return ".jpg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return ".gif"
    return ".bin"


def image_bytes(store: CaptionStore, record: ImageRecord) -> bytes:
    """The record's encoded image: its embedded bytes, or its file under the store's image root."""
    what = f"record {record.image_id!r}"
    if record.image_bytes is not None:
        return record.image_bytes
    if not record.image_path or store.image_root is None:
        raise VLForgeError(f"{what} has image path {record.image_path!r} but the store {store.path!r} has no "
                           "image root")
    return read_image_file(resolve_image_path(store.image_root, record.image_path, what), what)


def write_image(images_dir: str, record: ImageRecord, data: bytes) -> str:
    """Write ``data`` as ``images_dir/<image_file_name>``; returns the file name."""
    name = image_file_name(record, data)
    try:
        os.makedirs(images_dir, exist_ok=True)
        with open(os.path.join(images_dir, name), "wb") as f:
            f.write(data)
    except OSError as err:
        raise VLForgeError(f"cannot write image {os.path.join(images_dir, name)!r}: {err.strerror or err}") from None
    return name
