"""Critic rows as LLaVA conversation JSON (the shape of LLaVA-Critic-113k and LLaVA's instruction data): a list of
``{"id", "image", "conversations": [{"from": "human", "value": "<image>\\n<prompt>"}, {"from": "gpt", "value":
<critique>}]}``, the image path relative to an image folder; ``error_type`` is kept as an extra key. Rows read back
give (image path, sentence, critique, verdict), so a critic trains from files as well as from the store.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from vlforge.common.errors import VLForgeError
from vlforge.common.store.export_llava import IMAGE_TOKEN
from vlforge.critic.prompts import critic_prompt, sentence_of
from vlforge.critic.shapes_critic_data import CriticExample
from vlforge.critic.verdicts import parse_verdict


@dataclass
class CriticRow:
    row_id: str
    image: Path
    sentence: str
    critique: str
    consistent: bool | None
    error_type: str | None = None


def to_conversation(row_id: str, image: str, example: CriticExample) -> dict:
    return {"id": row_id, "image": image, "error_type": example.error_type,
            "conversations": [{"from": "human", "value": f"{IMAGE_TOKEN}\n{critic_prompt(example.sentence)}"},
                              {"from": "gpt", "value": example.critique}]}


def image_inside(root: Path, relative: str, row_id: str) -> Path:
    """``root / relative`` resolved; a one-line error naming the row when it is absolute or escapes ``root``."""
    if not relative or os.path.isabs(relative):
        raise VLForgeError(f"row {row_id}: image path {relative!r} must be relative to the image folder")
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()):
        raise VLForgeError(f"row {row_id}: image path {relative!r} escapes the image folder {root}")
    return path


def read_llava_critic(json_path: str | os.PathLike, image_folder: str | os.PathLike | None = None) -> list[CriticRow]:
    """Rows of a critic conversation file; images resolve inside ``image_folder`` (default: the file's folder).
    A malformed row or an image path outside the folder is a one-line error naming the row."""
    json_path = Path(json_path)
    root = Path(image_folder) if image_folder is not None else json_path.parent
    try:
        items = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise VLForgeError(f"{json_path}: cannot read conversation JSON ({exc})") from None
    if not isinstance(items, list):
        raise VLForgeError(f"{json_path}: expected a JSON list of conversations")
    rows = []
    for number, item in enumerate(items):
        row_id = str(item.get("id", f"#{number}")) if isinstance(item, dict) else f"#{number}"
        try:
            human, gpt = item["conversations"][0], item["conversations"][1]
            sentence = sentence_of(human["value"])
            if human["from"] != "human" or gpt["from"] != "gpt" or sentence is None:
                raise KeyError("conversations")
            rows.append(CriticRow(row_id, image_inside(root, item["image"], row_id), sentence, gpt["value"],
                                  parse_verdict(gpt["value"]), item.get("error_type")))
        except (KeyError, IndexError, TypeError):
            raise VLForgeError(f"{json_path}: row {row_id} is not a critic conversation "
                               "(human prompt with a sentence, then the critique)") from None
    return rows
