"""Sampling a ShapesWorld scene graph: background, 1-4 objects, an optional sign, and the relations between
objects.

The scene graph is a JSON-able dict (stored in ``record.meta["scene_graph"]``)::

    {"image_size": 64,
     "background": {"colour": "grey", "texture": "plain"},
     "objects": [{"id": 0, "shape": "circle", "colour": "red", "size": "large",
                  "x": 20, "y": 40, "radius": 13, "region": "bottom left"}, ...],
     "relations": [{"subject": 0, "relation": "left of", "object": 1}, ...],
     "sign": {"word": "Sale", "box": [x0, y0, x1, y1], "region": "top"} or None}

Placement guarantees used by the tests and by anyone reading pixels: every object lies inside the image; two
objects' centres are at least ``max(r_i, r_j) + 2`` px apart and at least ``(1 - max_overlap)(r_i + r_j)``, so
no object covers another's centre; (colour, shape) pairs are unique within an image, so "the red circle" names
one object; the sign never overlaps an object's bounding box. Relations hold between object centres with a
margin of ``relation_margin * image_size`` px: i is "left of" j when x_i < x_j - margin, "above" j when y_i <
y_j - margin (image y grows downwards); both a horizontal and a vertical relation may hold for a pair.
"""

from __future__ import annotations

import math
import random
from typing import Any

from vlforge.common.shapes.config import ShapesWorldConfig
from vlforge.common.shapes.vocabulary import (
    BACKGROUND_CLASHES,
    BACKGROUND_TEXTURES,
    BACKGROUNDS,
    HORIZONTAL_REGIONS,
    SIGN_WORDS,
    SIZES,
    VERTICAL_REGIONS,
)

PLACEMENT_ATTEMPTS = 60


def region_of(x: float, y: float, image_size: int) -> str:
    """The coarse region of a point: "<top|middle|bottom> <left|centre|right>", shortened as people say it
    ("top left", "top", "left", "centre", ...)."""
    column = HORIZONTAL_REGIONS[min(2, int(3 * x / image_size))]
    row = VERTICAL_REGIONS[min(2, int(3 * y / image_size))]
    if row == "middle":
        return column
    return row if column == "centre" else f"{row} {column}"


def relations_between(objects: list[dict[str, Any]], margin: float) -> list[dict[str, Any]]:
    """Every relation that holds for a pair i < j, from the centres with a margin."""
    relations = []
    for i, a in enumerate(objects):
        for j in range(i + 1, len(objects)):
            b = objects[j]
            if a["x"] < b["x"] - margin:
                relations.append({"subject": i, "relation": "left of", "object": j})
            elif a["x"] > b["x"] + margin:
                relations.append({"subject": i, "relation": "right of", "object": j})
            if a["y"] < b["y"] - margin:
                relations.append({"subject": i, "relation": "above", "object": j})
            elif a["y"] > b["y"] + margin:
                relations.append({"subject": i, "relation": "below", "object": j})
    return relations


def _fits(x: int, y: int, r: int, placed: list[dict[str, Any]], config: ShapesWorldConfig) -> bool:
    for other in placed:
        need = max(max(r, other["radius"]) + 2, (1 - config.max_overlap) * (r + other["radius"]))
        if math.hypot(x - other["x"], y - other["y"]) < need:
            return False
    return True


def _place_objects(rng: random.Random, config: ShapesWorldConfig, background: str) -> list[dict[str, Any]]:
    size_px = config.image_size
    count = rng.randint(config.min_objects, config.max_objects)
    colours = [c for c in config.colours if c not in BACKGROUND_CLASHES[background]]
    pairs = [(c, s) for c in colours for s in config.shapes]
    rng.shuffle(pairs)
    objects: list[dict[str, Any]] = []
    for colour, shape in pairs[:count]:
        size = rng.choice(SIZES)
        for attempt_size in (size, "small") if size == "large" else (size,):
            r = config.pixel_radius(attempt_size)
            for _ in range(PLACEMENT_ATTEMPTS):
                x, y = rng.randint(r, size_px - 1 - r), rng.randint(r, size_px - 1 - r)
                if _fits(x, y, r, objects, config):
                    objects.append({"id": len(objects), "shape": shape, "colour": colour,
                                    "size": attempt_size, "x": x, "y": y, "radius": r,
                                    "region": region_of(x, y, size_px)})
                    break
            else:
                continue
            break
    return objects


def _place_sign(rng: random.Random, objects: list[dict[str, Any]], image_size: int) -> dict[str, Any] | None:
    word = rng.choice(SIGN_WORDS)
    height = max(9, round(image_size * 0.17))
    width = round(height * (0.55 * len(word) + 0.5))
    if width >= image_size:
        return None
    for _ in range(PLACEMENT_ATTEMPTS):
        x0, y0 = rng.randint(0, image_size - width), rng.randint(0, image_size - height)
        x1, y1 = x0 + width - 1, y0 + height - 1
        clear = all(x1 < o["x"] - o["radius"] or x0 > o["x"] + o["radius"] or
                    y1 < o["y"] - o["radius"] or y0 > o["y"] + o["radius"] for o in objects)
        if clear:
            return {"word": word, "box": [x0, y0, x1, y1],
                    "region": region_of((x0 + x1) / 2, (y0 + y1) / 2, image_size)}
    return None


def sample_scene(rng: random.Random, config: ShapesWorldConfig) -> dict[str, Any]:
    """Draw one scene graph from ``rng`` (see the module docstring for its layout and guarantees)."""
    background = {"colour": rng.choice(BACKGROUNDS),
                  "texture": rng.choice(BACKGROUND_TEXTURES[1:]) if rng.random() < config.texture_probability
                  else "plain"}
    objects = _place_objects(rng, config, background["colour"])
    sign = _place_sign(rng, objects, config.image_size) if rng.random() < config.sign_probability else None
    margin = config.relation_margin * config.image_size
    return {"image_size": config.image_size, "background": background, "objects": objects,
            "relations": relations_between(objects, margin), "sign": sign}
