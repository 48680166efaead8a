"""Sentence splitting: a regex, exact for ShapesWorld's generated text, and pysbd (a rule-based segmenter, pure
Python, no downloads) for real captions, where abbreviations ("Mr.", "St. Louis", "U.S.", "p.m."), decimals,
ellipses, quotes and URLs defeat a regex.

A splitter is named by a string: ``"regex"``, ``"pysbd"`` or ``"auto"`` (resolved per store by
:func:`resolve_splitter`: the regex for a ShapesWorld store, pysbd for any other). :func:`sentence_spans` gives the
(start, end) character span of each sentence, whitespace excluded.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any

from vlforge.common.errors import VLForgeError

SENTENCE_SPLITTERS = ("regex", "pysbd")
# A sentence ends at ".", "!" or "?" (possibly repeated, possibly followed by closing quotes or brackets)
# that is followed by whitespace or the end of the text; "3.5" and "e.g.x" do not end sentences.
SENTENCE_END = re.compile(r"[.!?]+[\"'\u201d\u2019)\]]*(?=\s|$)")
# A span of the segmenter that ends a sentence: a final mark (also CJK and the ellipsis), then closers.
ENDS_WITH_MARK = re.compile(r"[.!?\u2026\u3002\uff01\uff1f]+[\"'\u201d\u2019)\]]*$")
# Abbreviations pysbd's English list lacks; a segment ending in one is joined to the next.
EXTRA_ABBREVIATIONS = ("approx", "ca", "incl", "esp", "fig", "cf", "vs")
_EXTRA_ABBREVIATION_END = re.compile(r"\b(?:" + "|".join(EXTRA_ABBREVIATIONS) + r")\.$", re.IGNORECASE)


def resolve_splitter(name: str, store_info: Mapping[str, Any] | None = None) -> str:
    """``name``, or for ``"auto"``: "regex" when the store is ShapesWorld (its info has ``shapesworld``), else
    "pysbd"."""
    if name == "auto":
        return "regex" if store_info is not None and "shapesworld" in store_info else "pysbd"
    if name not in SENTENCE_SPLITTERS:
        raise VLForgeError(f"sentence splitter {name!r} is not one of auto, {', '.join(SENTENCE_SPLITTERS)}")
    return name


def sentence_spans(text: str, splitter: str = "regex") -> list[tuple[int, int]]:
    """(start, end) of each sentence of ``text`` in order, surrounding whitespace excluded; a trailing fragment
    without an end mark is a sentence too."""
    if splitter == "regex":
        bounds, start = [], 0
        for match in SENTENCE_END.finditer(text):
            bounds.append((start, match.end()))
            start = match.end()
        bounds.append((start, len(text)))
    elif splitter == "pysbd":
        bounds = _join_extra_abbreviations(text, [(s.start, s.end) for s in _segmenter().segment(text)])
    else:
        raise VLForgeError(f"sentence splitter {splitter!r} is not one of {', '.join(SENTENCE_SPLITTERS)}")
    spans = []
    for start, end in bounds:
        piece = text[start:end]
        if piece.strip():
            lead = len(piece) - len(piece.lstrip())
            spans.append((start + lead, start + len(piece.rstrip())))
    return spans


def ends_sentence(sentence: str) -> bool:
    """Whether a span ends with a sentence-final mark (a complete sentence, not a cut fragment)."""
    return ENDS_WITH_MARK.search(sentence) is not None


def _join_extra_abbreviations(text: str, bounds: list[tuple[int, int]]) -> list[tuple[int, int]]:
    joined: list[tuple[int, int]] = []
    for start, end in bounds:
        if joined and _EXTRA_ABBREVIATION_END.search(text[joined[-1][0]:joined[-1][1]].rstrip()):
            joined[-1] = (joined[-1][0], end)
        else:
            joined.append((start, end))
    return joined


@functools.lru_cache(maxsize=1)
def _segmenter() -> Any:
    import pysbd

    return pysbd.Segmenter(language="en", clean=False, char_span=True)
