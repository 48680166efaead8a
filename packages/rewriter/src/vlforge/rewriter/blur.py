"""Blurring a high-quality query into a low-quality one (query-rewriter paper §3.1: "for high-quality queries,
we blur concepts ... to decrease their similarity to images"). The paper asks an MLLM; on ShapesWorld a rule
does it: the first colour word and the first shape word of the query (canonical or rare synonym) become the
vague words of ShapesWorld's vague queries ("reddish", "round") and every other detail is dropped.
"""

from __future__ import annotations

from vlforge.common.shapes.queries import VAGUE_COLOURS, VAGUE_SHAPES
from vlforge.rewriter.query_words import COLOUR_OF, SHAPE_OF, query_words


def blur_query(text: str) -> str | None:
    """ "something reddish and round" for "crimson disc next to an azure lozenge"; None when the query names no
    colour and shape of the ShapesWorld vocabulary."""
    words = query_words(text)
    colour = next((COLOUR_OF[w] for w in words if w in COLOUR_OF), None)
    shape = next((SHAPE_OF[w] for w in words if w in SHAPE_OF), None)
    if colour is None or shape is None:
        return None
    return f"something {VAGUE_COLOURS[colour]} and {VAGUE_SHAPES[shape]}"
