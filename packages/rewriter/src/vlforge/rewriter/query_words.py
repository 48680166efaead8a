"""Reading a ShapesWorld query's words: which colour and shape words (canonical or rare synonym) it uses and
which objects it names, as canonical (colour, shape) pairs. Shared by the rule-based blur and the oracle agent's
stated-only mode."""

from __future__ import annotations

import re

from vlforge.common.shapes.vocabulary import COLOUR_SYNONYMS, SHAPE_SYNONYMS

COLOUR_OF = {word: colour for colour, words in COLOUR_SYNONYMS.items() for word in words}
SHAPE_OF = {word: shape for shape, words in SHAPE_SYNONYMS.items() for word in words}


def query_words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


def named_objects(text: str) -> list[tuple[str, str]]:
    """The objects ``text`` names as a colour word directly followed by a shape word, in order, canonical:
    [("red", "circle"), ("blue", "diamond")] for "crimson disc next to an azure lozenge"."""
    words = query_words(text)
    return [(COLOUR_OF[a], SHAPE_OF[b]) for a, b in zip(words, words[1:]) if a in COLOUR_OF and b in SHAPE_OF]
