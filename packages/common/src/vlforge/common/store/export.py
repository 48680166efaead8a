"""Export a store as JSON Lines or as a COCO captions file.

- ``record_json(record)``: the JSON view of one record (what ``show --json`` prints and each jsonl line holds):
  image_id, split, width, height, image_path, image_bytes (the LENGTH of the embedded bytes, or null; bytes are
  never dumped), captions [{text, source, kind, provenance, scores}], meta.
- jsonl: one record_json object per line, sorted by id; embedded images are referenced by id only.
- coco: {"info", "images": [{id, file_name, width, height, vlforge_id, split}], "annotations": [{id, image_id,
  caption, source, kind}]}. Image ids are the store ids when every id is a canonical decimal integer, else 1..N in
  sorted id order (the store id is always kept as ``vlforge_id``). A path image keeps its path (relative to the
  store's image root, recorded as info.vlforge_image_root); an embedded image is written to ``images_dir`` (default
  ``<out stem>_images`` beside the JSON) and its file_name is relative to that folder (info.vlforge_images_dir).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Any

from vlforge.common.errors import VLForgeError
from vlforge.common.records import ImageRecord
from vlforge.common.store.lmdb_store import CaptionStore


def record_json(record: ImageRecord) -> dict[str, Any]:
    return {"image_id": record.image_id, "split": record.split, "width": record.width, "height": record.height,
            "image_path": record.image_path,
            "image_bytes": len(record.image_bytes) if record.image_bytes is not None else None,
            "captions": [c.to_dict() for c in record.captions], "meta": record.meta}


def export_jsonl(store: CaptionStore, out: str | os.PathLike) -> int:
    """Write one record_json object per line; returns the number of lines."""
    lines = 0
    with _open_out(out) as f:
        for record in store.iter_records():
            f.write(json.dumps(record_json(record), ensure_ascii=False, default=_jsonable) + "\n")
            lines += 1
    return lines


def export_coco(store: CaptionStore, out: str | os.PathLike, images_dir: str | os.PathLike | None = None) -> int:
    """Write a COCO captions JSON (see module doc); returns the number of images."""
    out = os.fspath(out)
    if images_dir is None:
        images_dir = os.path.splitext(out)[0] + "_images"
    images_dir = os.fspath(images_dir)
    ids = store.ids()
    numeric = all(i.isdigit() and str(int(i)) == i for i in ids)
    images, annotations = [], []
    for number, record in enumerate(store.iter_records(), start=1):
        coco_id = int(record.image_id) if numeric else number
        if record.image_bytes is not None:
            file_name = embedded_file_name(record)
            os.makedirs(images_dir, exist_ok=True)
            with open(os.path.join(images_dir, file_name), "wb") as img:
                img.write(record.image_bytes)
        else:
            file_name = record.image_path
        images.append({"id": coco_id, "file_name": file_name, "width": record.width, "height": record.height,
                       "vlforge_id": record.image_id, "split": record.split})
        for caption in record.captions:
            annotations.append({"id": len(annotations) + 1, "image_id": coco_id, "caption": caption.text,
                                "source": caption.source, "kind": caption.kind})
    info = {"description": f"exported by vlforge from {store.path}", "vlforge_image_root": store.image_root,
            "vlforge_images_dir": os.path.abspath(images_dir), **{f"store_{k}": v for k, v in store.info.items()}}
    with _open_out(out) as f:
        json.dump({"info": info, "images": images, "annotations": annotations}, f, ensure_ascii=False,
                  default=_jsonable)
    return len(images)


def embedded_file_name(record: ImageRecord) -> str:
    """A safe, unique file name for an embedded image: the id if it is a plain name, else a sanitised id plus a
    hash; the extension follows the encoded format."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", record.image_id).lstrip(".") or "image"
    if safe != record.image_id:
        safe = f"{safe[:100]}_{hashlib.sha1(record.image_id.encode('utf-8')).hexdigest()[:10]}"
    return safe + _extension(record.image_bytes or b"")


def _extension(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return ".png"
    if data.startswith(b"\xff\xd8"):
        return ".jpg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return ".gif"
    return ".bin"


def _open_out(out: str | os.PathLike):
    try:
        parent = os.path.dirname(os.path.abspath(out))
        os.makedirs(parent, exist_ok=True)
        return open(out, "w", encoding="utf-8")
    except OSError as err:
        raise VLForgeError(f"cannot write {os.fspath(out)!r}: {err.strerror or err}") from None


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"bytes": len(value)}
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
