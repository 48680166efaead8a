"""COCO captions JSON (``captions_train2017.json``): ``images`` [{id, file_name, ...}] and ``annotations``
[{image_id, caption, ...}], images under ``--images/<file_name>``.

Image id: the COCO image id as a decimal string ("391895"); the same id as the karpathy reader gives COCO
images, so both files merge into one record per image. Split: "val" when the file name holds "val", "test"
when it holds "test", else "train"."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

from vlforge.common.ingest.files import load_json, require_keys
from vlforge.common.ingest.items import Skipped, SourceItem, scalar_id


def split_from_file_name(path: str | Path) -> str:
    stem = Path(path).stem.lower()
    return "val" if "val" in stem else "test" if "test" in stem else "train"


def read_coco(annotations: str, images: Path | None) -> Iterator[SourceItem | Skipped]:
    data = require_keys(load_json(annotations), ("images", "annotations"), annotations, "COCO captions")
    file_name = Path(annotations).name
    captions: dict[str, list[object]] = defaultdict(list)
    for number, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict) or "image_id" not in ann or "caption" not in ann:
            yield Skipped(f"annotation #{number} of {file_name}", "malformed_entry",
                          "an annotation needs 'image_id' and 'caption'")
            continue
        if scalar_id(ann["image_id"]) is None:
            yield Skipped(f"annotation #{number} of {file_name}", "bad_id",
                          "an annotation's 'image_id' must be a string or an integer")
            continue
        captions[scalar_id(ann["image_id"])].append(ann["caption"])
    split = split_from_file_name(annotations)
    known: set[str] = set()
    for number, image in enumerate(data["images"]):
        if not isinstance(image, dict) or "id" not in image or "file_name" not in image:
            yield Skipped(f"image #{number} of {file_name}", "malformed_entry",
                          "an image needs 'id' and 'file_name'")
            continue
        image_id = scalar_id(image["id"])
        if image_id is None:
            yield Skipped(f"image #{number} of {file_name}", "bad_id", "an image's 'id' must be a string or an integer")
            continue
        known.add(image_id)
        yield SourceItem(image_id=image_id, name=f"image {image_id} of {file_name}",
                         captions=captions.get(image_id, []), image_path=image["file_name"], split=split)
    for image_id in captions.keys() - known:
        yield Skipped(f"annotations of image {image_id} in {file_name}", "malformed_entry",
                      f"{len(captions[image_id])} caption(s) name image {image_id}, which is not in 'images'")
