"""LLaVA conversation JSON (``blip_laion_cc_sbu_558k.json``, ``llava_instruct_150k.json``, ...): a list of
{id, image, conversations: [{from: human|gpt, value}, ...]}, images under ``--images/<image>`` (default: the
JSON file's folder). The first ``gpt`` turn is the caption.

Image id: the ``image`` path as written ("coco/train2017/000000033471.jpg"), so several conversations about
one image merge into one record (log lines name the entry's own ``id``). Entries without an image (text-only
conversations) are skipped as missing_image."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from vlforge.common.errors import VLForgeError
from vlforge.common.ingest.files import load_json
from vlforge.common.ingest.items import Skipped, SourceItem


def first_answer(conversations: object) -> list[object]:
    """[the value of the first gpt turn], or [] when there is none."""
    if not isinstance(conversations, list):
        return []
    for turn in conversations:
        if isinstance(turn, dict) and turn.get("from") == "gpt":
            return [turn.get("value")]
    return []


def read_llava(annotations: str, images: Path | None) -> Iterator[SourceItem | Skipped]:
    data = load_json(annotations)
    if not isinstance(data, list):
        raise VLForgeError(f"annotation file {annotations!r} is not a LLaVA JSON file: top level is a "
                           f"{type(data).__name__}, expected a list of conversations")
    file_name = Path(annotations).name
    for number, entry in enumerate(data):
        name = f"entry #{number} of {file_name}"
        if not isinstance(entry, dict) or "conversations" not in entry:
            yield Skipped(name, "malformed_entry", "an entry needs 'conversations'")
            continue
        if "id" in entry:
            name = f"entry #{number} (id {entry['id']}) of {file_name}"
        image = entry.get("image")
        if not isinstance(image, str) or not image:
            yield Skipped(name, "missing_image", "the entry has no image")
            continue
        yield SourceItem(image_id=image, name=name, captions=first_answer(entry["conversations"]),
                         image_path=image)
