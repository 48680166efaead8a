"""JSON lines: one object per line, images relative to --images (default: the file's folder). Two schemas:

- simple: {"image": path, "caption": str or [str], "id"?: str}; captions get --source and kind "free".
- lossless (what ``vlforge-store export --format jsonl`` writes): {"id", "split", "image": path or
  "image_base64": str, "captions": [{text, source, kind, provenance, scores}], "meta": {...}}; every caption keeps
  its own source, kind, provenance and scores, the split and meta are kept, a base64 image is stored embedded.

Image id: ``id`` when the line gives one, else the image path as written. Blank lines are ignored; a line that
is not a JSON object is skipped as malformed_json, a caption object that is not {text, source, kind, ...} as
malformed_entry."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from pathlib import Path

from vlforge.common.errors import VLForgeError
from vlforge.common.ingest.files import iter_lines
from vlforge.common.ingest.items import Skipped, SourceItem, scalar_id
from vlforge.common.records import Caption


def read_jsonl(annotations: str, images: Path | None) -> Iterator[SourceItem | Skipped]:
    file_name = Path(annotations).name
    for line_number, line in iter_lines(annotations):
        if not line.strip():
            continue
        name = f"line {line_number} of {file_name}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            yield Skipped(name, "malformed_json", f"not JSON ({err.msg}, column {err.colno})")
            continue
        if not isinstance(obj, dict):
            yield Skipped(name, "malformed_json", f"a line must be a JSON object, not a {type(obj).__name__}")
            continue
        yield _item(obj, name)


def _item(obj: dict, name: str) -> SourceItem | Skipped:
    image, encoded = obj.get("image"), obj.get("image_base64")
    image_bytes = None
    if isinstance(encoded, str):
        try:
            image_bytes = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            return Skipped(name, "malformed_entry", "'image_base64' is not valid base64")
    elif not isinstance(image, str) or not image:
        return Skipped(name, "missing_image", "the line has no 'image' path and no 'image_base64'")
    if "captions" in obj:
        try:
            captions: list[object] = [Caption.from_dict(c) for c in obj["captions"]]
        except (VLForgeError, KeyError, TypeError, AttributeError) as err:
            return Skipped(name, "malformed_entry", f"'captions' must be a list of caption objects ({err})")
        if not all(isinstance(c.source, str) and c.source for c in captions):
            return Skipped(name, "malformed_entry", "every caption object needs a non-empty 'source'")
    else:
        caption = obj.get("caption")
        captions = caption if isinstance(caption, list) else [] if caption is None else [caption]
    if obj.get("id") is not None and scalar_id(obj["id"]) is None:
        return Skipped(name, "bad_id", f"'id' must be a string or an integer, not {type(obj['id']).__name__}")
    image_id = scalar_id(obj["id"]) if obj.get("id") is not None else image
    if image_id is None:
        return Skipped(name, "malformed_entry", "a line with 'image_base64' needs an 'id'")
    split = obj.get("split") if isinstance(obj.get("split"), str) else None
    meta = obj.get("meta") if isinstance(obj.get("meta"), dict) else {}
    return SourceItem(image_id=image_id, name=name, captions=captions,
                      image_path=None if image_bytes is not None else image, image_bytes=image_bytes, split=split,
                      meta=meta)
