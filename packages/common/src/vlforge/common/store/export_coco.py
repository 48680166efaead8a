"""COCO captions export: {"info", "images": [{id, file_name, width, height, vlforge_id, split}], "annotations":
[{id, image_id, caption, source, kind}]}.

Image ids are the store ids when every exported id is a canonical decimal integer, else 1..N in sorted id order
(the store id is always kept as ``vlforge_id``). A path image keeps its path (relative to the store's image root,
recorded as info.vlforge_image_root); an embedded image is written to ``images_dir`` (default ``<out stem>_images``
beside the JSON) and its file_name is relative to that folder (info.vlforge_images_dir).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

from vlforge.common.records import ImageRecord
from vlforge.common.store.export_images import write_image
from vlforge.common.store.export_select import ExportSummary
from vlforge.common.store.lmdb_store import CaptionStore
from vlforge.common.store.output import open_text_out


def export_coco(store: CaptionStore, records: Iterator[ImageRecord], out: str, summary: ExportSummary,
                images_dir: str | None = None) -> None:
    images_dir = os.path.abspath(images_dir or os.path.splitext(out)[0] + "_images")
    selected = list(records)
    numeric = all(r.image_id.isdigit() and str(int(r.image_id)) == r.image_id for r in selected)
    images, annotations = [], []
    for number, record in enumerate(selected, start=1):
        coco_id = int(record.image_id) if numeric else number
        if record.image_bytes is not None:
            file_name = write_image(images_dir, record, record.image_bytes)
        else:
            file_name = record.image_path
        images.append({"id": coco_id, "file_name": file_name, "width": record.width, "height": record.height,
                       "vlforge_id": record.image_id, "split": record.split})
        for caption in record.captions:
            annotations.append({"id": len(annotations) + 1, "image_id": coco_id, "caption": caption.text,
                                "source": caption.source, "kind": caption.kind})
    info = {"description": f"exported by vlforge from {store.path}", "vlforge_image_root": store.image_root,
            "vlforge_images_dir": images_dir, **{f"store_{k}": v for k, v in store.info.items()}}
    with open_text_out(out) as f:
        json.dump({"info": info, "images": images, "annotations": annotations}, f, ensure_ascii=False)
    summary.images, summary.captions = len(images), len(annotations)
