"""JSON lines: one object per line, {"image": path, "caption": str or [str], "id"?: str}, image paths
relative to --images (default: the file's folder).

Image id: ``id`` when the line gives one, else the image path as written. Blank lines are ignored; a line that
is not a JSON object is skipped as malformed_json."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from vlforge.common.ingest.files import iter_lines
from vlforge.common.ingest.items import Skipped, SourceItem


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
        image = obj.get("image")
        if not isinstance(image, str) or not image:
            yield Skipped(name, "missing_image", "the line has no 'image' path")
            continue
        caption = obj.get("caption")
        captions = caption if isinstance(caption, list) else [] if caption is None else [caption]
        image_id = str(obj["id"]) if obj.get("id") is not None else image
        yield SourceItem(image_id=image_id, name=name, captions=captions, image_path=image)
