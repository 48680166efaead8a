"""LLaVA conversation JSON export (the layout of ``blip_laion_cc_sbu_558k.json`` and ``llava_instruct_150k.json``):
a list of ``{"id", "image", "conversations": [{"from": "human", "value": "<image>\\n<prompt>"}, {"from": "gpt",
"value": <caption>}]}``, one entry per caption, the prompt chosen by the caption's kind (:data:`CAPTION_PROMPTS`).
With ``qa``, each record's ``meta["qa"]`` ({question, answer} pairs, e.g. ShapesWorld's) becomes one more entry, a
multi-turn conversation. ``image`` is relative to the JSON's folder (``ingest --format llava`` reads it back);
images are written as stored to ``images_dir`` (default ``<out stem>_images``), which must lie inside that folder.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

from vlforge.common.errors import VLForgeError
from vlforge.common.records import ImageRecord
from vlforge.common.store.export_images import image_bytes, write_image
from vlforge.common.store.export_select import ExportSummary
from vlforge.common.store.lmdb_store import CaptionStore
from vlforge.common.store.output import open_text_out

IMAGE_TOKEN = "<image>"
CAPTION_PROMPTS = {"short": "Describe the image briefly.", "descriptive": "Describe the image.",
                   "dense": "Describe the image in detail.", "alt_fusion": "Describe the image.",
                   "free": "Write a caption for the image.", "query": "Write a search query for the image.",
                   "negative": "Write a caption for the image."}


def export_llava(store: CaptionStore, records: Iterator[ImageRecord], out: str, summary: ExportSummary,
                 images_dir: str | None = None, qa: bool = False) -> None:
    out_dir = os.path.dirname(os.path.abspath(out))
    images_dir = os.path.abspath(images_dir or os.path.splitext(out)[0] + "_images")
    if os.path.commonpath([out_dir, images_dir]) != out_dir:
        raise VLForgeError(f"--images-dir {images_dir!r} must lie inside the JSON's folder {out_dir!r}")
    entries = []
    for record in records:
        name = write_image(images_dir, record, image_bytes(store, record))
        image = os.path.relpath(os.path.join(images_dir, name), out_dir).replace(os.sep, "/")
        for n, caption in enumerate(record.captions):
            entries.append({"id": f"{record.image_id}-{n}", "image": image, "conversations": [
                {"from": "human", "value": f"{IMAGE_TOKEN}\n{CAPTION_PROMPTS[caption.kind]}"},
                {"from": "gpt", "value": caption.text}]})
        pairs = record.meta.get("qa") if qa else None
        if pairs:
            turns = []
            for number, pair in enumerate(pairs):
                question = f"{IMAGE_TOKEN}\n{pair['question']}" if number == 0 else pair["question"]
                turns += [{"from": "human", "value": question}, {"from": "gpt", "value": str(pair["answer"])}]
            entries.append({"id": f"{record.image_id}-qa", "image": image, "conversations": turns})
        summary.images += 1
        summary.captions += len(record.captions)
    with open_text_out(out) as f:
        json.dump(entries, f, ensure_ascii=False, indent=1)
    summary.note = f"{len(entries)} conversations"
