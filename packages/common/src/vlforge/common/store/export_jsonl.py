"""Lossless JSON Lines export: the schema ``vlforge-store ingest --format jsonl --annotations FILE`` reads back.

One object per image, keys sorted::

    {"id": str, "split": str, "width": int, "height": int,
     "image": "<path relative to the JSONL's folder>"          # or, with embed_images:
     "image_base64": "<the encoded image, base64>",
     "captions": [{"text", "source", "kind", "provenance", "scores"}, ...],
     "meta": {...}}                                              # scene graphs, QA, atomic facts, urls, ...

Images are written as they are stored (never re-encoded) to ``images_dir`` (default ``<out stem>_images`` beside the
file), which must lie inside the JSONL's folder so the relative paths read back. store -> export -> ingest ->
export gives identical lines.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator

from vlforge.common.errors import VLForgeError
from vlforge.common.records import ImageRecord
from vlforge.common.store.export_images import image_bytes, write_image
from vlforge.common.store.export_select import ExportSummary
from vlforge.common.store.lmdb_store import CaptionStore
from vlforge.common.store.output import open_text_out


def export_jsonl(store: CaptionStore, records: Iterator[ImageRecord], out: str, summary: ExportSummary,
                 images_dir: str | None = None, embed_images: bool = False) -> None:
    out_dir = os.path.dirname(os.path.abspath(out))
    images_dir = os.path.abspath(images_dir or os.path.splitext(out)[0] + "_images")
    if not embed_images and os.path.commonpath([out_dir, images_dir]) != out_dir:
        raise VLForgeError(f"--images-dir {images_dir!r} must lie inside the JSONL's folder {out_dir!r} "
                           "(image paths are written relative to it)")
    with open_text_out(out) as f:
        for record in records:
            data = image_bytes(store, record)
            line = {"id": record.image_id, "split": record.split, "width": record.width, "height": record.height,
                    "captions": [c.to_dict() for c in record.captions], "meta": record.meta}
            if embed_images:
                line["image_base64"] = base64.b64encode(data).decode("ascii")
            else:
                name = write_image(images_dir, record, data)
                line["image"] = os.path.relpath(os.path.join(images_dir, name), out_dir).replace(os.sep, "/")
            try:
                text = json.dumps(line, ensure_ascii=False, sort_keys=True)
            except (TypeError, ValueError) as err:
                raise VLForgeError(f"record {record.image_id!r} cannot be written as JSON: {err}") from None
            f.write(text + "\n")
            summary.images += 1
            summary.captions += len(record.captions)
