"""CHAIR object-hallucination metrics (Rohrbach et al. 2018, "Object Hallucination in Image Captioning").

Each phrase of a caption that names an object (a word or a multi-word name in the object table ``synonyms``:
canonical name -> every word for it, plurals included) is one object mention, mapped to its canonical object. A
mention is hallucinated when that object is not among the image's objects.

- CHAIR_i = |hallucinated mentions| / |all mentions|   (instance level; 0 when no caption mentions an object)
- CHAIR_s = |captions with >= 1 hallucinated mention| / |all captions|   (sentence level)

Both in percent. As in the paper's reference code (LisaAnne/Hallucination): words are lower-cased, letters only;
at each position the longest multi-word name is matched first ("teddy bear" is a teddy bear, not a bear; "hot
dog" no dog; "baby elephant" an elephant, not a person); every mention counts (a caption saying "circle" twice has
two mentions); negation ("no triangle") is not detected; a caption naming "toilet" does not also name a chair
through "seat" (our COCO table has no "seat"). Object tables: the ShapesWorld vocabulary (``SHAPE_SYNONYMS``, the
default) and COCO's 80 classes (:data:`~vlforge.common.metrics.coco_objects.COCO_OBJECTS`), through the same code.

CHAIR figures computed with different synonym lists are not comparable: report the table with the figure.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from vlforge.common.errors import VLForgeError
from vlforge.common.metrics.coco_objects import COCO_OBJECTS
from vlforge.common.shapes.vocabulary import SHAPE_SYNONYMS

__all__ = ["COCO_OBJECTS", "ChairResult", "chair", "object_mentions", "scene_objects"]

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


def _phrase_table(synonyms: Mapping[str, Sequence[str]]) -> tuple[dict[str, str], int]:
    """{phrase (words joined by one space): canonical name}, and the longest phrase in words."""
    table = {}
    for name, words in synonyms.items():
        for word in (name, *words):
            table[" ".join(_WORD.findall(word.lower()))] = name
    table.pop("", None)
    return table, max((p.count(" ") + 1 for p in table), default=1)


def object_mentions(caption: str, synonyms: Mapping[str, Sequence[str]] = SHAPE_SYNONYMS) -> list[str]:
    """The canonical objects a caption names, in order, longest phrase first at each word."""
    table, longest = _phrase_table(synonyms)
    return _mentions(caption, table, longest)


def _mentions(caption: str, table: Mapping[str, str], longest: int) -> list[str]:
    words = _WORD.findall(caption.lower())
    said, i = [], 0
    while i < len(words):
        for size in range(min(longest, len(words) - i), 0, -1):
            name = table.get(" ".join(words[i:i + size]))
            if name is not None:
                said.append(name)
                i += size
                break
        else:
            i += 1
    return said


def chair(captions: Sequence[str], image_objects: Sequence[Collection[str]],
          synonyms: Mapping[str, Sequence[str]] = SHAPE_SYNONYMS) -> ChairResult:
    """CHAIR_i and CHAIR_s of ``captions[n]`` against ``image_objects[n]`` (canonical names or any synonym), e.g.
    ``chair(captions, [["person", "teddy bear"], ...], synonyms=COCO_OBJECTS)`` with COCO class names."""
    if len(captions) != len(image_objects):
        raise VLForgeError(f"{len(captions)} captions but {len(image_objects)} object lists")
    if not captions:
        raise VLForgeError("chair needs at least one caption")
    table, longest = _phrase_table(synonyms)
    mentions, hallucinations = [], []
    for n, (caption, objects) in enumerate(zip(captions, image_objects, strict=True)):
        keys = [" ".join(_WORD.findall(o.lower())) for o in objects]
        unknown = [o for o, key in zip(objects, keys, strict=True) if key not in table]
        if unknown:
            raise VLForgeError(f"object {unknown[0]!r} of caption {n} is not in the object vocabulary")
        present = {table[key] for key in keys}
        said = _mentions(caption, table, longest)
        mentions.append(said)
        hallucinations.append([m for m in said if m not in present])
    num_mentions = sum(map(len, mentions))
    num_hallucinated = sum(map(len, hallucinations))
    flags = [bool(h) for h in hallucinations]
    return ChairResult(chair_i=100.0 * num_hallucinated / num_mentions if num_mentions else 0.0,
                       chair_s=100.0 * sum(flags) / len(flags), num_mentions=num_mentions,
                       num_hallucinated_mentions=num_hallucinated, mentions=mentions,
                       hallucinations=hallucinations, hallucinated=flags)
