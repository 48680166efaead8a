"""Store-wide counts, kept exact inside every write transaction (a merge first removes the old record's share)."""

from __future__ import annotations

from typing import TypedDict

from vlforge.common.records import ImageRecord


class StoreCounts(TypedDict):
    """images; captions; splits {split: images}; by_source {source: captions}; by_kind {kind: captions}."""

    images: int
    captions: int
    splits: dict[str, int]
    by_source: dict[str, int]
    by_kind: dict[str, int]


def empty_counts() -> StoreCounts:
    return {"images": 0, "captions": 0, "splits": {}, "by_source": {}, "by_kind": {}}


def add_record(counts: StoreCounts, record: ImageRecord, sign: int = 1) -> None:
    """Add (sign=1) or remove (sign=-1) one record's contribution; zero entries are dropped."""
    counts["images"] += sign
    counts["captions"] += sign * len(record.captions)
    _bump(counts["splits"], record.split, sign)
    for caption in record.captions:
        _bump(counts["by_source"], caption.source, sign)
        _bump(counts["by_kind"], caption.kind, sign)


def _bump(table: dict[str, int], name: str, sign: int) -> None:
    value = table.get(name, 0) + sign
    if value:
        table[name] = value
    else:
        table.pop(name, None)
