"""What a format reader yields: a :class:`SourceItem` (an image with its raw captions) or a :class:`Skipped`
entry.

Readers only parse; every validity check (captions, paths, pixels) happens once, in the driver."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class SourceItem:
    """One image as the annotations describe it, before any check.

    name: how log lines name it ("line 12 of a.jsonl", "image 42 of captions.json").
    captions: the raw caption values (checked later; may be non-strings or hold invalid UTF-8).
    image_path: relative to the images root, as written in the annotations; or ``image_bytes`` (webdataset).
    split: the split the file gives, or None for the run's default.
    """

    image_id: str
    name: str
    captions: list[Any]
    image_path: str | None = None
    image_bytes: bytes | None = None
    split: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Skipped:
    """A record the reader could not turn into a SourceItem; ``reason`` is one of checks.RECORD_REASONS."""

    name: str
    reason: str
    detail: str


def scalar_id(value: Any) -> str | None:
    """An image id from an annotation value: a string as is, an integer in decimal; None for anything else (a list,
    an object, a float, a bool, null), which the reader reports as bad_id."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None
