"""Evaluation questions for an MLLM from a ShapesWorld store: ``{"id", "image", "question", "answer", "type"}``
with the image as a PIL image.

- ``shapes_vqa_questions``: the stored QA pairs (``record.meta["qa"]``) of a split, by type;
- ``shapes_pope_questions``: POPE sets built from the split's scene graphs (``vlforge.common.shapes.pope``), type
  ``pope_<strategy>``, answer the label;
- ``llava_json_questions``: every human/gpt turn pair of a LLaVA conversation JSON file's rows with an image,
  asked on its own (``<image>`` removed), type ``llava_json``, answer the gpt turn (exact match).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from itertools import islice
from typing import Any

from vlforge.common.errors import VLForgeError
from vlforge.common.shapes.llava_qa import QA_TYPES
from vlforge.common.shapes.pope import pope_questions
from vlforge.common.store import CaptionStore
from vlforge.common.store.images import decode_image, read_image_file
from vlforge.vlm.mllm.conversations import IMAGE_TOKEN, ConversationSummary, read_llava_conversations

POPE_PREFIX = "pope_"


def shapes_vqa_questions(store: str | os.PathLike, split: str, limit: int | None = None,
                         types: Iterable[str] = QA_TYPES) -> list[dict[str, Any]]:
    """The QA pairs of ``types`` of the first ``limit`` records of ``split`` (all when None)."""
    wanted = set(types)
    unknown = sorted(wanted - set(QA_TYPES))
    if unknown:
        raise VLForgeError(f"QA type {unknown[0]!r} is not one of {', '.join(QA_TYPES)}")
    questions = []
    with CaptionStore(store) as opened:
        for record in islice(opened.iter_records(split), limit):
            pairs = [qa for qa in record.meta.get("qa", ()) if qa.get("type") in wanted]
            image = opened.load_image(record) if pairs else None
            questions += [{"id": f"{record.image_id}/{index}", "image": image, "question": qa["question"],
                           "answer": qa["answer"], "type": qa["type"]} for index, qa in enumerate(pairs)]
    if not questions:
        raise VLForgeError(f"store {os.fspath(store)}: no QA pairs of types {sorted(wanted)} in split {split!r}")
    return questions


def shapes_pope_questions(store: str | os.PathLike, split: str, strategy: str, limit: int | None = None,
                          sample_num: int = 2, seed: int = 0) -> list[dict[str, Any]]:
    """A POPE set (``strategy``: random, popular, adversarial) over the first ``limit`` records of ``split``."""
    with CaptionStore(store) as opened:
        records = list(islice(opened.iter_records(split), limit))
        sampled = pope_questions(records, strategy, sample_num=sample_num, seed=seed)
        images = {r.image_id: opened.load_image(r) for r in records if any(q["image_id"] == r.image_id
                                                                           for q in sampled)}
    if not sampled:
        raise VLForgeError(f"store {os.fspath(store)}: no image of split {split!r} has {sample_num} objects for POPE")
    return [{"id": f"{q['image_id']}/pope{q['question_id']}", "image": images[q["image_id"]],
             "question": q["question"], "answer": q["label"], "type": f"{POPE_PREFIX}{strategy}"} for q in sampled]


def llava_json_questions(path: str | os.PathLike, images_root: str | os.PathLike | None = None,
                         ) -> tuple[list[dict[str, Any]], ConversationSummary]:
    """The questions of LLaVA JSON file ``path`` (module docstring) and the summary of its skipped rows
    (``read_llava_conversations``; text-only rows are skipped here too, counted as ``no_image``)."""
    conversations, summary = read_llava_conversations(path, images_root)
    questions = []
    for conversation in conversations:
        if conversation.image_path is None:
            summary.skipped["no_image"].append(conversation.id)
            summary.kept -= 1
            continue
        what = f"row {conversation.id} of {os.fspath(path)}"
        image = decode_image(read_image_file(conversation.image_path, what), what)
        pairs = zip(conversation.turns[::2], conversation.turns[1::2], strict=True)
        questions += [{"id": f"{conversation.id}/{index}", "image": image,
                       "question": human.replace(IMAGE_TOKEN, "").strip(), "answer": gpt, "type": "llava_json"}
                      for index, ((_, human), (_, gpt)) in enumerate(pairs)]
    return questions, summary
