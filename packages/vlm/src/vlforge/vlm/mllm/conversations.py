"""LLaVA conversation JSON, read with validation: ``[{"id", "image"?, "conversations": [{"from": "human" | "gpt",
"value"}, ...]}, ...]`` (``llava_instruct_150k.json``, ``blip_laion_cc_sbu_558k.json``, ShapesWorld QA from
``vlforge.common.shapes.llava_qa``). Rows without an image are text-only conversations.

A row is skipped, and counted with its id, when it is malformed, its conversation is empty, its turns are not
human/gpt alternating (starting with human, ending with gpt), its image is missing or leaves the images root, it
gives an image but no ``<image>`` in a human turn, or it has ``<image>`` without an image or more than once.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlforge.common.errors import VLForgeError
from vlforge.common.store.images import resolve_image_path

IMAGE_TOKEN = "<image>"
ROLES = ("human", "gpt")
SKIP_REASONS = ("malformed_row", "empty_conversation", "turn_order", "missing_image", "image_outside_root",
                "no_image_token", "image_token_without_image", "extra_image_tokens", "no_image")
_IDS_SHOWN = 5


@dataclass(frozen=True)
class Conversation:
    """One valid row: ``turns`` are (role, text) pairs, human first, alternating, gpt last; ``image`` the path
    relative to the images root (None for a text-only row); ``image_path`` the resolved file."""

    id: str
    turns: tuple[tuple[str, str], ...]
    image: str | None = None
    image_path: str | None = None


@dataclass
class ConversationSummary:
    """Rows kept, and the ids of the rows skipped by reason."""

    source: str
    kept: int = 0
    skipped: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    @property
    def skipped_count(self) -> int:
        return sum(len(ids) for ids in self.skipped.values())

    def to_text(self) -> str:
        """One line: ``llava json a.json: kept 10, skipped 2 (turn_order 1: id7; missing_image 1: id9)``."""
        parts = []
        for reason in SKIP_REASONS:  # "no_image": a reader that needs images skipped a text-only row
            ids = self.skipped.get(reason)
            if ids:
                more = f", ... (+{len(ids) - _IDS_SHOWN})" if len(ids) > _IDS_SHOWN else ""
                parts.append(f"{reason} {len(ids)}: {', '.join(ids[:_IDS_SHOWN])}{more}")
        detail = f" ({'; '.join(parts)})" if parts else ""
        return f"llava json {self.source}: kept {self.kept}, skipped {self.skipped_count}{detail}"


def row_problem(row: Any, images_root: str | os.PathLike | None) -> tuple[str | None, str | None]:
    """``(reason, resolved image path)``; reason is None for a valid row. ``images_root`` None: image files are
    not checked."""
    if not isinstance(row, dict) or not isinstance(row.get("conversations"), list):
        return "malformed_row", None
    turns = row["conversations"]
    if not turns:
        return "empty_conversation", None
    if not all(isinstance(t, dict) and isinstance(t.get("value"), str) for t in turns):
        return "malformed_row", None
    roles = [t.get("from") for t in turns]
    if len(roles) % 2 or any(role != ROLES[i % 2] for i, role in enumerate(roles)):
        return "turn_order", None
    image = row.get("image")
    in_human = sum(t["value"].count(IMAGE_TOKEN) for t in turns if t["from"] == "human")
    in_any = sum(t["value"].count(IMAGE_TOKEN) for t in turns)
    if image is None or image == "":
        return ("image_token_without_image", None) if in_any else (None, None)
    if not isinstance(image, str):
        return "malformed_row", None
    if in_human == 0:
        return "no_image_token", None
    if in_any > 1:
        return "extra_image_tokens", None
    if images_root is None:
        return None, None
    try:
        resolved = resolve_image_path(images_root, image, "image")
    except VLForgeError:
        return "image_outside_root", None
    return (None, resolved) if os.path.isfile(resolved) else ("missing_image", None)


def read_llava_conversations(path: str | os.PathLike, images_root: str | os.PathLike | None = None,
                             check_images: bool = True) -> tuple[list[Conversation], ConversationSummary]:
    """The valid rows of LLaVA JSON file ``path`` and the summary of the skipped ones (module docstring).

    ``images_root``: the folder images are relative to (default: the JSON file's folder); ``check_images``
    False skips the file checks (paths are still kept inside the root when a root is given)."""
    source = Path(path)
    try:
        rows = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise VLForgeError(f"llava json {source}: cannot be read ({str(exc).splitlines()[0]})") from None
    if not isinstance(rows, list):
        raise VLForgeError(f"llava json {source}: the top level is a {type(rows).__name__}, expected a list of rows")
    root = (Path(images_root) if images_root is not None else source.parent) if check_images else None
    summary = ConversationSummary(str(source))
    kept = []
    for number, row in enumerate(rows):
        row_id = str(row["id"]) if isinstance(row, dict) and "id" in row else f"#{number}"
        reason, resolved = row_problem(row, root)
        if reason is not None:
            summary.skipped[reason].append(row_id)
            continue
        turns = tuple((t["from"], t["value"]) for t in row["conversations"])
        kept.append(Conversation(row_id, turns, row.get("image") or None, resolved))
    summary.kept = len(kept)
    return kept, summary
