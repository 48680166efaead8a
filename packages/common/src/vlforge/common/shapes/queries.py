"""Hard retrieval queries (kind "query"): what a user types, not what a captioner writes.

Two per image: ``rare_synonyms`` paraphrases an object (and a neighbour or the background) with the rare words
of ``RARE_COLOUR_WORDS`` / ``RARE_SHAPE_WORDS`` ("crimson disc next to an azure lozenge"); ``vague`` uses
loose terms ("something reddish and round near the top"). A query rewriter learns to turn these into captions
a retriever knows.
"""

from __future__ import annotations

import random
from typing import Any

from vlforge.common.records import Caption
from vlforge.common.shapes.grammar import article
from vlforge.common.shapes.vocabulary import RARE_COLOUR_WORDS, RARE_SHAPE_WORDS

VAGUE_COLOURS = {"red": "reddish", "green": "greenish", "blue": "bluish", "yellow": "yellowish",
                 "purple": "purplish", "orange": "orangey", "white": "pale", "black": "dark"}
VAGUE_SHAPES = {"circle": "round", "square": "boxy", "triangle": "pointy", "star": "spiky",
                "hexagon": "many-sided", "diamond": "slanted"}
VAGUE_REGIONS = {"top": "near the top", "bottom": "near the bottom", "left": "over on the left",
                 "right": "over on the right", "centre": "around the middle"}
NEIGHBOUR_WORDS = ("next to", "near", "beside", "and")


def _rare(rng: random.Random, obj: dict[str, Any]) -> str:
    return f"{rng.choice(RARE_COLOUR_WORDS[obj['colour']])} {rng.choice(RARE_SHAPE_WORDS[obj['shape']])}"


def coarse_region(region: str) -> str:
    """The key of ``VAGUE_REGIONS`` a vague query uses for a region: "top" for "top left", "left" for "left"."""
    return region.split()[0] if region.split()[0] in VAGUE_REGIONS else region


def _vague_region(region: str) -> str:
    return VAGUE_REGIONS[coarse_region(region)]


def hard_queries(rng: random.Random, scene: dict[str, Any]) -> list[Caption]:
    objects = scene["objects"]
    target = rng.choice(objects)
    rare = _rare(rng, target)
    others = [o for o in objects if o is not target]
    if others and rng.random() < 0.6:
        other = _rare(rng, rng.choice(others))
        rare = f"{rare} {rng.choice(NEIGHBOUR_WORDS)} {article(other)} {other}"
    elif rng.random() < 0.5:
        rare = f"{rare} on a {scene['background']['colour']} backdrop"
    vague = rng.choice(("something {c} and {s} {r}", "a {c} {s} thing {r}", "{s} {c} object {r}")).format(
        c=VAGUE_COLOURS[target["colour"]], s=VAGUE_SHAPES[target["shape"]], r=_vague_region(target["region"]))
    provenance = {"generator": "shapesworld", "target": target["id"]}
    return [Caption(text=rare, source="gt", kind="query", provenance=dict(provenance, style="rare_synonyms")),
            Caption(text=vague, source="gt", kind="query", provenance=dict(provenance, style="vague"))]
