"""Which records and captions an export writes, and the summary of what it wrote and left out.

Filters (``--source``, ``--kind``, ``--split``; each repeatable, an empty filter keeps everything) select captions;
a record whose captions are all filtered out is left out. Formats with no notion of caption kind (COCO, CSV,
LLaVA, WebDataset, Parquet: their consumers train on every caption they hold) leave out by default the kinds that
are not captions of the image, :data:`NOT_IMAGE_CAPTIONS` (``negative``: a false caption; ``query``: a search
query), and their summary says how many they left out; an explicit ``--kind`` overrides that default. JSONL, the
lossless format, keeps every kind.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field, replace

from vlforge.common.errors import VLForgeError
from vlforge.common.records import CAPTION_KINDS, ImageRecord

NOT_IMAGE_CAPTIONS = ("negative", "query")


@dataclass(frozen=True)
class ExportSelection:
    """Captions kept: source in ``sources``, kind in ``kinds``, record split in ``splits`` (empty: any)."""

    sources: frozenset[str] = frozenset()
    kinds: frozenset[str] = frozenset()
    splits: frozenset[str] = frozenset()

    @classmethod
    def of(cls, sources: Collection[str] | None = None, kinds: Collection[str] | None = None,
           splits: Collection[str] | None = None) -> ExportSelection:
        unknown = sorted(set(kinds or ()) - set(CAPTION_KINDS))
        if unknown:
            raise VLForgeError(f"caption kind {unknown[0]!r} is not one of {', '.join(CAPTION_KINDS)}")
        return cls(frozenset(sources or ()), frozenset(kinds or ()), frozenset(splits or ()))

    def for_caption_format(self) -> ExportSelection:
        """This selection, or when it names no kind, every kind but :data:`NOT_IMAGE_CAPTIONS`."""
        if self.kinds:
            return self
        return replace(self, kinds=frozenset(k for k in CAPTION_KINDS if k not in NOT_IMAGE_CAPTIONS))


@dataclass
class ExportSummary:
    """images / captions written, records left out (no caption selected), captions left out by kind, files."""

    format: str
    out: str
    images: int = 0
    captions: int = 0
    records_left_out: int = 0
    captions_left_out: Counter[str] = field(default_factory=Counter)
    files: list[str] = field(default_factory=list)
    note: str = ""

    def to_dict(self) -> dict:
        return {"format": self.format, "out": self.out, "images": self.images, "captions": self.captions,
                "records_left_out": self.records_left_out,
                "captions_left_out_by_kind": dict(sorted(self.captions_left_out.items())), "note": self.note}

    def to_text(self) -> str:
        lines = [f"exported {self.images} images, {self.captions} captions as {self.format} to {self.out}"]
        if self.captions_left_out:
            kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(self.captions_left_out.items()))
            lines.append(f"  left out captions: {kinds} (select them with --kind)")
        if self.records_left_out:
            lines.append(f"  left out {self.records_left_out} images with no selected caption")
        if self.note:
            lines.append(f"  {self.note}")
        return "\n".join(lines)


def select_records(records: Iterator[ImageRecord], selection: ExportSelection,
                   summary: ExportSummary) -> Iterator[ImageRecord]:
    """Each record with only its selected captions (records of other splits skipped silently; records left with
    no caption skipped and counted; captions dropped by the kind filter counted by kind)."""
    for record in records:
        if selection.splits and record.split not in selection.splits:
            continue
        kept = []
        for caption in record.captions:
            if selection.sources and caption.source not in selection.sources:
                continue
            if selection.kinds and caption.kind not in selection.kinds:
                summary.captions_left_out[caption.kind] += 1
                continue
            kept.append(caption)
        if not kept:
            summary.records_left_out += 1
            continue
        yield replace(record, captions=kept)
