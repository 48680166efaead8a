"""POPE question sets (Li et al., EMNLP 2023; RUCAIBox/POPE ``main.py`` / ``utils.py``) built from ShapesWorld
scene graphs. An object is a coloured shape ("red circle"); an image's objects are its distinct coloured shapes.

As POPE does: only images with at least ``sample_num`` objects take part; object frequencies and co-occurrences
are counted over those images; for each image the first ``sample_num`` objects are asked about (label "yes"), each
followed by one absent object (label "no") chosen by the strategy:

- ``random``: uniformly among all objects seen in the set;
- ``popular``: the most frequent object of the set not yet used and not in the image;
- ``adversarial``: the object co-occurring most often with the positive just asked, not yet used and not in the
  image;

popular and adversarial fall back to random when none is left. The question is POPE's template
"Is there a/an {object} in the image?" (with the right article).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable
from typing import Any

from vlforge.common.errors import VLForgeError
from vlforge.common.records import ImageRecord
from vlforge.common.shapes.grammar import article

STRATEGIES = ("random", "popular", "adversarial")


def scene_object_names(record: ImageRecord) -> list[str]:
    """The distinct "colour shape" objects of a ShapesWorld record, in scene order."""
    objects = (record.meta.get("scene_graph") or {}).get("objects")
    if objects is None:
        raise VLForgeError(f"record {record.image_id}: no scene graph (meta.scene_graph.objects)")
    return list(dict.fromkeys(f"{o['colour']} {o['shape']}" for o in objects))


def co_occurrence(images: list[list[str]]) -> dict[str, list[str]]:
    """For each object, the objects seen with it, most often first (ties: first seen first)."""
    counts: dict[str, Counter[str]] = {}
    for objects in images:
        for name in objects:
            counts.setdefault(name, Counter()).update(other for other in objects if other != name)
    return {name: [other for other, _ in counter.most_common()] for name, counter in counts.items()}


def pope_question(name: str) -> str:
    return f"Is there {article(name)} {name} in the image?"


def pope_questions(records: Iterable[ImageRecord], strategy: str, sample_num: int = 2,
                   seed: int = 0) -> list[dict[str, Any]]:
    """POPE questions ``{"question_id", "image_id", "object", "question", "label"}`` for ``records`` (module
    docstring); ``seed`` draws the random negatives."""
    if strategy not in STRATEGIES:
        raise VLForgeError(f"POPE strategy {strategy!r} is not one of {', '.join(STRATEGIES)}")
    if sample_num < 1:
        raise VLForgeError(f"POPE sample_num must be at least 1, got {sample_num}")
    selected = [(record.image_id, names) for record in records
                if len(names := scene_object_names(record)) >= sample_num]
    frequency = Counter(name for _, names in selected for name in names)
    all_objects = list(frequency)
    popular = [name for name, _ in frequency.most_common()]
    together = co_occurrence([names for _, names in selected])
    rng = random.Random(seed)
    questions: list[dict[str, Any]] = []

    def ask(image_id: str, name: str, label: str) -> None:
        questions.append({"question_id": len(questions) + 1, "image_id": image_id, "object": name,
                          "question": pope_question(name), "label": label})

    for image_id, names in selected:
        used: list[str] = []
        for positive in names[:sample_num]:
            used.append(positive)
            ask(image_id, positive, "yes")
            ranked = {"random": [], "popular": popular, "adversarial": together.get(positive, [])}[strategy]
            negative = next((o for o in ranked if o not in used and o not in names), None)
            if negative is None:
                candidates = [o for o in all_objects if o not in used and o not in names]
                if not candidates:
                    raise VLForgeError(f"image {image_id}: no absent object left to ask about (the set has "
                                       f"{len(all_objects)} objects)")
                negative = rng.choice(candidates)
            used.append(negative)
            ask(image_id, negative, "no")
    return questions
