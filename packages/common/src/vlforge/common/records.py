"""The record schema of the caption store (DESIGN.md section 4): one ImageRecord per image, a list of Captions.

Records are serialised with msgpack as plain dicts (never pickle). ``to_dict``/``from_dict`` are the only
conversions; unknown keys in a stored dict are an error so that schema drift is caught, not ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vlforge.common.errors import VLForgeError

CAPTION_KINDS = ("short", "descriptive", "dense", "alt_fusion", "query", "negative", "free")


@dataclass
class Caption:
    """One caption of an image.

    text: the caption. source: "alt_text", "gt" or a captioner's name. kind: one of CAPTION_KINDS.
    provenance: how it was made (model, prompt, decoding parameters, time, ...).
    scores: optional scores (clip_score, critic verdicts, chair flags, ...).
    """

    text: str
    source: str
    kind: str = "free"
    provenance: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in CAPTION_KINDS:
            raise VLForgeError(f"caption kind {self.kind!r} is not one of {', '.join(CAPTION_KINDS)}")

    def key(self) -> tuple[str, str, str]:
        """Identity used to make appends idempotent: the same text from the same source and kind is stored once."""
        return (self.text, self.source, self.kind)

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "source": self.source, "kind": self.kind,
                "provenance": dict(self.provenance), "scores": dict(self.scores)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Caption:
        unknown = set(d) - {"text", "source", "kind", "provenance", "scores"}
        if unknown:
            raise VLForgeError(f"caption has unknown keys {sorted(unknown)}")
        return cls(text=d["text"], source=d["source"], kind=d.get("kind", "free"),
                   provenance=dict(d.get("provenance") or {}), scores=dict(d.get("scores") or {}))


@dataclass
class ImageRecord:
    """One image: a stable id, where its pixels are, its split and size, its captions and free-form meta.

    Exactly one of ``image_path`` (relative to the store's recorded image root) and ``image_bytes`` (the encoded
    file, e.g. PNG or JPEG) is set. ``meta`` holds e.g. the ShapesWorld scene graph, QA pairs or atomic facts.
    """

    image_id: str
    split: str
    width: int
    height: int
    captions: list[Caption] = field(default_factory=list)
    image_path: str | None = None
    image_bytes: bytes | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def captions_by(self, source: str | None = None, kind: str | None = None) -> list[Caption]:
        return [c for c in self.captions
                if (source is None or c.source == source) and (kind is None or c.kind == kind)]

    def to_dict(self) -> dict[str, Any]:
        return {"image_id": self.image_id, "split": self.split, "width": self.width, "height": self.height,
                "captions": [c.to_dict() for c in self.captions], "image_path": self.image_path,
                "image_bytes": self.image_bytes, "meta": self.meta}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ImageRecord:
        unknown = set(d) - {"image_id", "split", "width", "height", "captions", "image_path", "image_bytes", "meta"}
        if unknown:
            raise VLForgeError(f"record {d.get('image_id')!r} has unknown keys {sorted(unknown)}")
        return cls(image_id=d["image_id"], split=d["split"], width=int(d["width"]), height=int(d["height"]),
                   captions=[Caption.from_dict(c) for c in d.get("captions", [])],
                   image_path=d.get("image_path"), image_bytes=d.get("image_bytes"), meta=dict(d.get("meta") or {}))
