"""Hallucinated versions of a ShapesWorld caption, for rejected preference responses.

``hallucinate`` replaces up to ``edits`` colour or shape words (singular forms of the ShapesWorld vocabulary, whole
words, case kept) by different words of the same category, so the caption names objects or attributes the image
does not have. Deterministic for a given ``random.Random``.
"""

from __future__ import annotations

import random
import re

from vlforge.common.shapes.vocabulary import COLOURS, SHAPES

_WORD = re.compile(r"[A-Za-z]+")
_CATEGORIES = (COLOURS, SHAPES)


def hallucinate(text: str, rng: random.Random, edits: int = 2) -> str | None:
    """The caption with up to ``edits`` colour/shape words swapped, or None when it has no such word."""
    spots = [(m.start(), m.end(), category) for m in _WORD.finditer(text)
             for category in _CATEGORIES if m.group().lower() in category]
    if not spots:
        return None
    chosen = sorted(rng.sample(spots, min(edits, len(spots))), reverse=True)
    for start, end, category in chosen:
        word = text[start:end]
        replacement = rng.choice([w for w in category if w != word.lower()])
        if word[0].isupper():
            replacement = replacement.capitalize()
        text = text[:start] + replacement + text[end:]
    return text
