"""CHAIR object-hallucination metrics (Rohrbach et al. 2018, "Object Hallucination in Image Captioning").

Each word of a caption that names an object (any synonym or plural in ``synonyms``) is one object mention, mapped to
its canonical object. A mention is hallucinated when that object is not among the image's objects.

- CHAIR_i = |hallucinated mentions| / |all mentions|   (instance level; 0 when no caption mentions an object)
- CHAIR_s = |captions with ≥ 1 hallucinated mention| / |all captions|   (sentence level)

Both in percent. As in the paper's reference code, every mention counts (a caption saying "circle" twice has two
mentions); words are matched after lower-casing, on letters only; negation ("no triangle") is not detected. The
ShapesWorld vocabulary (``SHAPE_SYNONYMS``: shapes with their synonyms and plurals) is the default object list.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vlforge.common.errors import VLForgeError
from vlforge.common.shapes.vocabulary import SHAPE_SYNONYMS

_WORD = re.compile(r"[a-z]+")


@dataclass
class ChairResult:
    """Summary scores plus, per caption, its canonical mentions, hallucinated mentions and whether it hallucinates."""

    chair_i: float
    chair_s: float
    num_mentions: int
    num_hallucinated_mentions: int
    mentions: list[list[str]]
    hallucinations: list[list[str]]
    hallucinated: list[bool]

    def summary(self) -> dict[str, float]:
        return {"chair_i": self.chair_i, "chair_s": self.chair_s, "num_mentions": self.num_mentions,
                "num_hallucinated_mentions": self.num_hallucinated_mentions}


def scene_objects(scene_graph: Mapping[str, Any]) -> list[str]:
    """The canonical object names of a ShapesWorld scene graph (``record.meta["scene_graph"]``)."""
    return [obj["shape"] for obj in scene_graph["objects"]]


def chair(captions: Sequence[str], image_objects: Sequence[Collection[str]],
          synonyms: Mapping[str, Sequence[str]] = SHAPE_SYNONYMS) -> ChairResult:
    """CHAIR_i and CHAIR_s of ``captions[n]`` against ``image_objects[n]`` (canonical names or any synonym)."""
    if len(captions) != len(image_objects):
        raise VLForgeError(f"{len(captions)} captions but {len(image_objects)} object lists")
    if not captions:
        raise VLForgeError("chair needs at least one caption")
    canonical = {word.lower(): name for name, words in synonyms.items() for word in (name, *words)}
    mentions, hallucinations = [], []
    for n, (caption, objects) in enumerate(zip(captions, image_objects, strict=True)):
        unknown = [o for o in objects if o.lower() not in canonical]
        if unknown:
            raise VLForgeError(f"object {unknown[0]!r} of caption {n} is not in the object vocabulary")
        present = {canonical[o.lower()] for o in objects}
        said = [canonical[w] for w in _WORD.findall(caption.lower()) if w in canonical]
        mentions.append(said)
        hallucinations.append([m for m in said if m not in present])
    num_mentions = sum(map(len, mentions))
    num_hallucinated = sum(map(len, hallucinations))
    flags = [bool(h) for h in hallucinations]
    return ChairResult(chair_i=100.0 * num_hallucinated / num_mentions if num_mentions else 0.0,
                       chair_s=100.0 * sum(flags) / len(flags), num_mentions=num_mentions,
                       num_hallucinated_mentions=num_hallucinated, mentions=mentions,
                       hallucinations=hallucinations, hallucinated=flags)
