"""ShapesWorld QA pairs (``record.meta["qa"]``, see ``shapes.qa``) as LLaVA conversation JSON rows: one multi-turn
conversation per image, the image in the first human turn, each question followed by LLaVA-1.5's short-answer
prompt and answered by the ground-truth word (LLaVA-1.5's VQA instruction data format)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from vlforge.common.errors import VLForgeError
from vlforge.common.records import ImageRecord

QA_TYPES = ("colour", "count", "position", "presence", "text")
SHORT_ANSWER_PROMPT = "Answer the question using a single word or phrase."


def default_image_name(record: ImageRecord) -> str:
    """``<image_id>.png``: where an exporter writes the record's image, relative to the JSON's images root."""
    return f"{record.image_id}.png"


def shapes_qa_to_llava(records: Iterable[ImageRecord], image_name: Callable[[ImageRecord], str] = default_image_name,
                       types: Iterable[str] = QA_TYPES,
                       answer_prompt: str | None = SHORT_ANSWER_PROMPT) -> list[dict[str, Any]]:
    """One LLaVA row ``{"id", "image", "conversations"}`` per record with QA pairs of ``types`` (records without
    any are left out); ``image_name(record)`` is the row's image path; ``answer_prompt`` (None: none) follows each
    question on a new line."""
    wanted = tuple(types)
    unknown = sorted(set(wanted) - set(QA_TYPES))
    if unknown:
        raise VLForgeError(f"QA type {unknown[0]!r} is not one of {', '.join(QA_TYPES)}")
    rows = []
    for record in records:
        pairs = [qa for qa in record.meta.get("qa", ()) if qa.get("type") in wanted]
        if not pairs:
            continue
        turns = []
        for index, qa in enumerate(pairs):
            question = qa["question"] if answer_prompt is None else f"{qa['question']}\n{answer_prompt}"
            turns.append({"from": "human", "value": f"<image>\n{question}" if index == 0 else question})
            turns.append({"from": "gpt", "value": str(qa["answer"])})
        rows.append({"id": record.image_id, "image": image_name(record), "conversations": turns})
    return rows
