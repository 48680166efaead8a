"""Noisy web-like alt-text, as in CC3M: lower-case, often one object only, sometimes a wrong colour or a rare
synonym, web filler ("stock photo", "free vector", "img 4821"), and a fraction of captions that describe
another image altogether. Every rate is a ``ShapesWorldConfig`` knob; the caption's provenance records which
noise was applied (``noise``: list of names, ``mismatched``: bool), so filtering methods can be scored against
the truth.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from vlforge.common.records import Caption
from vlforge.common.shapes.config import ShapesWorldConfig
from vlforge.common.shapes.vocabulary import COLOUR_SYNONYMS, SHAPE_SYNONYMS

FILLERS = ("stock photo", "free vector", "clipart", "vector illustration", "royalty free image",
           "hd wallpaper", "download free", "cartoon style", "icon set", "img {n}", "dsc{n}", "photo {n}")
TEMPLATES = ("{objects}", "{objects} on {background} background", "{objects} icon on {background} background",
             "{objects} isolated on {background} background", "simple {objects} shape on {background}",
             "{objects} pattern design for print", "cute {objects} in flat style")


def _object_words(rng: random.Random, obj: dict[str, Any], config: ShapesWorldConfig, noise: set[str]) -> str:
    colour, shape = obj["colour"], obj["shape"]
    if rng.random() < config.alt_wrong_colour_rate:
        colour = rng.choice([c for c in config.colours if c != colour])
        noise.add("wrong_colour")
    if rng.random() < config.alt_synonym_rate:
        noise.add("synonym")
        if rng.random() < 0.5:
            colour = rng.choice(COLOUR_SYNONYMS[colour][1:])
        else:
            shape = rng.choice(SHAPE_SYNONYMS[shape][2::2])
    return f"{obj['size']} {colour} {shape}" if rng.random() < 0.25 else f"{colour} {shape}"


def _filler(rng: random.Random) -> str:
    return rng.choice(FILLERS).format(n=rng.randint(100, 9999))


def alt_text_caption(rng: random.Random, scene: dict[str, Any], config: ShapesWorldConfig,
                     other_scene: Callable[[], dict[str, Any]]) -> Caption:
    """One noisy alt-text for ``scene``; with probability ``alt_mismatch_rate`` it describes
    ``other_scene()``, another random scene."""
    mismatched = rng.random() < config.alt_mismatch_rate
    described = other_scene() if mismatched else scene
    noise: set[str] = set()
    objects = list(described["objects"])
    if len(objects) > 1 and rng.random() < config.alt_one_object_rate:
        objects = [rng.choice(objects)]
    else:
        objects = objects[:2]
    words = " and ".join(_object_words(rng, o, config, noise) for o in objects)
    text = rng.choice(TEMPLATES).format(objects=words, background=described["background"]["colour"])
    if described["sign"] is not None and rng.random() < 0.5:
        text = f"{described['sign']['word']} sign with {text}"
    if rng.random() < config.alt_filler_rate:
        noise.add("filler")
        text = f"{_filler(rng)} of {text}" if rng.random() < 0.5 else f"{text} - {_filler(rng)}"
    if mismatched:
        noise.add("mismatch")
    return Caption(text=text.lower(), source="alt_text", kind="free",
                   provenance={"generator": "shapesworld", "noise": sorted(noise), "mismatched": mismatched})
