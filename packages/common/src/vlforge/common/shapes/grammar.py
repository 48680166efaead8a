"""Phrase building shared by every ShapesWorld text writer: noun phrases, lists, regions, relations,
numbers."""

from __future__ import annotations

from typing import Any

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six")
RELATION_PHRASES = {"left of": ("to the left of", "left of"), "right of": ("to the right of", "right of"),
                    "above": ("above",), "below": ("below", "beneath", "under")}


def article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def noun_phrase(obj: dict[str, Any], with_size: bool = True, definite: bool = False,
                colour: str | None = None, shape: str | None = None) -> str:
    """ "a large red circle", "the red circle"; ``colour``/``shape`` override the words used."""
    parts = (obj["size"] if with_size else None, colour or obj["colour"], shape or obj["shape"])
    words = " ".join(w for w in parts if w)
    return f"the {words}" if definite else f"{article(words)} {words}"


def join_list(phrases: list[str]) -> str:
    """ "a, b and c"."""
    if len(phrases) <= 1:
        return "".join(phrases)
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def region_phrase(region: str) -> str:
    """ "in the top left", "at the top", "on the left", "in the centre"."""
    if region in ("top", "bottom"):
        return f"at the {region}"
    if region in ("left", "right"):
        return f"on the {region}"
    return f"in the {region}"


def background_phrase(background: dict[str, Any], always_texture: bool = False) -> str:
    """ "grey", "plain grey", "striped beige"."""
    if background["texture"] == "plain" and not always_texture:
        return background["colour"]
    return f"{background['texture']} {background['colour']}"


def count_phrase(n: int) -> str:
    return f"{NUMBER_WORDS[n]} shape" + ("" if n == 1 else "s")
