"""Karpathy split files (``dataset_coco.json``, ``dataset_flickr30k.json``, ``dataset_flickr8k.json``):
``images`` [{filepath?, filename, split, sentences: [{raw, ...}], cocoid?}], images under
``--images/<filepath>/<filename>`` (flickr files have no filepath: ``--images/<filename>``).

Image id: ``cocoid`` as a decimal string when present (the COCO image id, so it merges with a COCO captions
ingest), else the file name without its extension (the Flickr photo id). Split: the entry's ``split`` (train,
val, test, restval) unless --split overrides it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from vlforge.common.ingest.files import load_json, require_keys
from vlforge.common.ingest.items import Skipped, SourceItem, scalar_id


def read_karpathy(annotations: str, images: Path | None) -> Iterator[SourceItem | Skipped]:
    data = require_keys(load_json(annotations), ("images",), annotations, "karpathy split")
    file_name = Path(annotations).name
    for number, entry in enumerate(data["images"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("filename"), str) \
                or not isinstance(entry.get("sentences"), list):
            yield Skipped(f"image #{number} of {file_name}", "malformed_entry",
                          "an image needs 'filename' and a 'sentences' list")
            continue
        filename = entry["filename"]
        image_id = scalar_id(entry["cocoid"]) if "cocoid" in entry else PurePosixPath(filename).stem
        if image_id is None:
            yield Skipped(f"image #{number} of {file_name}", "bad_id", "'cocoid' must be a string or an integer")
            continue
        path = f"{entry['filepath']}/{filename}" if entry.get("filepath") else filename
        captions = [s.get("raw") if isinstance(s, dict) else s for s in entry["sentences"]]
        split = entry.get("split") if isinstance(entry.get("split"), str) else None
        yield SourceItem(image_id=image_id, name=f"image {image_id} of {file_name}", captions=captions,
                         image_path=path, split=split)
