"""The outcome of one ingest: records read, added, merged, skipped by reason, captions dropped by reason."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class IngestSummary:
    """Counts of one ingest run.

    read: entries the reader produced (one per image, or per rejected line / row / entry).
    added: new images stored. merged: images already in the store (from an earlier run, or repeated in this
    input), their captions merged. duplicates: image ids repeated within this input (each merged, never
    doubled).
    captions_added: captions actually stored (duplicates of stored captions are not counted).
    skipped: records skipped, by reason. captions_dropped: single captions dropped, by reason.
    """

    format: str
    annotations: str
    read: int = 0
    added: int = 0
    merged: int = 0
    duplicates: int = 0
    captions_added: int = 0
    split_conflicts: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    captions_dropped: Counter[str] = field(default_factory=Counter)

    @property
    def went_in(self) -> int:
        """Records accepted into the store (new or merged)."""
        return self.added + self.merged

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "annotations": self.annotations, "read": self.read,
                "added": self.added, "merged": self.merged, "duplicates": self.duplicates,
                "captions_added": self.captions_added,
                "split_conflicts": self.split_conflicts, "skipped": dict(sorted(self.skipped.items())),
                "captions_dropped": dict(sorted(self.captions_dropped.items()))}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def to_text(self) -> str:
        lines = [f"ingest {self.format} {self.annotations}",
                 f"  read:              {self.read}",
                 f"  images added:      {self.added}",
                 f"  images merged:     {self.merged}  (already stored or repeated; "
                 f"{self.duplicates} repeated in this input)",
                 f"  captions added:    {self.captions_added}",
                 f"  records skipped:   {sum(self.skipped.values())}"]
        lines += [f"    {reason}: {n}" for reason, n in sorted(self.skipped.items())]
        lines.append(f"  captions dropped:  {sum(self.captions_dropped.values())}")
        lines += [f"    {reason}: {n}" for reason, n in sorted(self.captions_dropped.items())]
        if self.split_conflicts:
            lines.append(f"  split conflicts:   {self.split_conflicts}  (stored split kept)")
        return "\n".join(lines)

    def failure_reason(self) -> str:
        """One line saying why nothing went in."""
        reasons = ", ".join(f"{r}: {n}" for r, n in self.skipped.most_common())
        reasons = reasons or "the annotations hold no record"
        return f"no record went in from {self.annotations!r} ({self.read} read; {reasons})"
