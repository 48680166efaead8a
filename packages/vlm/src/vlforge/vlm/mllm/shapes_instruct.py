"""`vlforge-vlm shapes-llava-json`: a ShapesWorld split's QA pairs as LLaVA-1.5 VQA instruction data (LLaVA JSON,
:func:`vlforge.common.shapes.llava_qa.shapes_qa_to_llava`: one multi-turn conversation per image, each question
followed by LLaVA-1.5's short-answer prompt, which ``evaluate-mllm`` asks with too), images written beside it.
Conversations hold at most ``--max-turns`` QA pairs (an image's pairs are split into several conversations, each
with the image), so they fit a tiny LM's context. ``--caption-kind`` adds one captioning conversation per
ground-truth caption of that kind.

    vlforge-vlm shapes-llava-json data/shapesworld --split seed --out data/llava/instruct.json
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vlforge.common.atomic_file import write_atomically
from vlforge.common.console import ToolParser
from vlforge.common.progress import track
from vlforge.common.records import CAPTION_KINDS
from vlforge.common.shapes.llava_qa import QA_TYPES, shapes_qa_to_llava
from vlforge.common.store import CaptionStore
from vlforge.common.store.export_images import image_bytes, write_image
from vlforge.common.store.export_llava import CAPTION_PROMPTS, IMAGE_TOKEN


def split_conversation(row: dict[str, Any], max_turns: int) -> list[dict[str, Any]]:
    """``row`` as conversations of at most ``max_turns`` human/gpt pairs, each opening with the image."""
    turns = row["conversations"]
    size = 2 * max_turns
    if len(turns) <= size:
        return [row]
    parts = []
    for number, start in enumerate(range(0, len(turns), size)):
        chunk = [dict(t) for t in turns[start:start + size]]
        if start:
            chunk[0]["value"] = f"{IMAGE_TOKEN}\n{chunk[0]['value']}"
        parts.append({**row, "id": f"{row['id']}-{number}", "conversations": chunk})
    return parts


def shapes_llava_rows(store: CaptionStore, split: str, out: str | os.PathLike, types: Sequence[str] = QA_TYPES,
                      caption_kind: str | None = None, limit: int | None = None,
                      max_turns: int = 5) -> list[dict[str, Any]]:
    """The LLaVA rows of ``split`` (module docstring); images are written to ``<out stem>_images``."""
    out_dir = Path(out).absolute().parent
    images_dir = out_dir / f"{Path(out).stem}_images"
    ids = store.ids(split=split)[:limit]
    records, names = [], {}
    for record in track(map(store.get, ids), "shapes-llava-json", total=len(ids), unit="images"):
        name = write_image(str(images_dir), record, image_bytes(store, record))
        names[record.image_id] = f"{images_dir.name}/{name}"
        records.append(record)
    rows = [part for row in shapes_qa_to_llava(records, image_name=lambda r: names[r.image_id], types=types)
            for part in split_conversation(row, max_turns)]
    prompt = f"{IMAGE_TOKEN}\n{CAPTION_PROMPTS[caption_kind]}" if caption_kind else ""
    for record in records if caption_kind else ():
        for number, caption in enumerate(c for c in record.captions if c.source == "gt" and c.kind == caption_kind):
            rows.append({"id": f"{record.image_id}-{caption_kind}{number}", "image": names[record.image_id],
                         "conversations": [{"from": "human", "value": prompt}, {"from": "gpt", "value": caption.text}]})
    return rows


def main(argv: Sequence[str]) -> int:
    parser = ToolParser(prog="vlforge-vlm shapes-llava-json",
                        description="Write a ShapesWorld split's QA pairs as LLaVA JSON instruction data.")
    parser.add_argument("store")
    parser.add_argument("--split", required=True)
    parser.add_argument("--out", required=True, help="the JSON file (images go to <out stem>_images beside it)")
    parser.add_argument("--types", nargs="+", default=list(QA_TYPES), choices=QA_TYPES)
    parser.add_argument("--caption-kind", default=None, choices=[k for k in CAPTION_KINDS if k != "negative"],
                        help="add a captioning conversation per ground-truth caption of this kind")
    parser.add_argument("--limit", type=int, default=None, help="the first N images of the split")
    parser.add_argument("--max-turns", type=int, default=5, help="QA pairs per conversation at most (5)")
    args = parser.parse_args(argv)
    if args.max_turns < 1:
        parser.error(f"--max-turns must be >= 1, got {args.max_turns}")
    with CaptionStore(args.store) as store:
        rows = shapes_llava_rows(store, args.split, args.out, args.types, args.caption_kind, args.limit,
                                 args.max_turns)
    write_atomically(args.out, json.dumps(rows, ensure_ascii=False, indent=1), inputs=[args.store])
    print(f"wrote {len(rows)} conversations to {args.out}")
    return 0
