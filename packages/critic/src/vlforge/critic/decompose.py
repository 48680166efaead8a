"""Atomic decomposition of a caption (ultra-detailed caption paper §4.2, Fig. 12): split it into self-contained
sentences, each naming its object explicitly, so a critic can judge each against the image on its own.

One interface — a ``Decomposer`` is any callable ``caption -> list[str]`` — and, for now, one backend:
``RuleBasedDecomposer`` splits sentences (``vlforge.common.text.split_sentences``) and replaces each pronoun
("it", "its", "they", "them") by the last noun phrase before it, made definite ("It is above the blue star." after
"There is a large red circle." becomes "The large red circle is above the blue star."). A noun phrase is a
determiner (a, an, the) and up to four following words, stopping at a preposition, verb, conjunction or relative
word; phrases whose head is a position ("the top", "the left") are not antecedents. The generative backend (an LM
with the paper's Fig. 12 prompt) plugs in behind the same interface once vlforge.common.lm exists.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from vlforge.common.text import split_sentences

Decomposer = Callable[[str], list[str]]

DETERMINERS = {"a", "an", "the"}
STOP_WORDS = {
    "is", "are", "was", "were", "be", "sits", "sit", "stands", "lies", "holds", "shows", "reads", "says", "has",
    "have", "in", "on", "at", "of", "to", "with", "near", "next", "beside", "above", "below", "beneath", "under",
    "over", "behind", "between", "from", "by", "and", "or", "but", "that", "which", "who", "while", "as", "it",
    "its", "they", "them", "there", "this", "these", "those",
}
POSITION_HEADS = {"left", "right", "top", "bottom", "centre", "center", "middle", "side", "front", "back", "corner",
                  "edge", "image", "picture", "photo", "scene"}
PRONOUNS = {"it": "", "its": "'s", "they": "", "them": ""}
_TOKEN = re.compile(r"[A-Za-z][A-Za-z'-]*")
MAX_NOUN_PHRASE_WORDS = 4


def noun_phrases(text: str) -> list[tuple[int, int, str]]:
    """(start, end, phrase) of every noun phrase in ``text``, in order (see the module docstring)."""
    tokens = list(_TOKEN.finditer(text))
    phrases = []
    for i, token in enumerate(tokens):
        if token.group().lower() not in DETERMINERS:
            continue
        words = []
        for follower in tokens[i + 1:i + 1 + MAX_NOUN_PHRASE_WORDS]:
            between = text[(words[-1] if words else token).end():follower.start()]
            if follower.group().lower() in STOP_WORDS | DETERMINERS or between.strip():
                break
            words.append(follower)
        if words and words[-1].group().lower() not in POSITION_HEADS:
            phrases.append((token.start(), words[-1].end(), text[token.start():words[-1].end()]))
    return phrases


def _definite(phrase: str) -> str:
    first, _, rest = phrase.partition(" ")
    return f"the {rest}" if first.lower() in DETERMINERS else phrase


def resolve_pronouns(sentences: list[str]) -> list[str]:
    """Each pronoun replaced by the last noun phrase before it (earlier sentences included), made definite;
    a pronoun with no noun phrase before it stays."""
    resolved, antecedent = [], None
    for sentence in sentences:
        out, cursor = [], 0
        phrases = noun_phrases(sentence)
        for token in _TOKEN.finditer(sentence):
            word = token.group().lower()
            before = [p for p in phrases if p[1] <= token.start()]
            current = _definite(before[-1][2]) if before else antecedent
            if word in PRONOUNS and current is not None:
                replacement = current + PRONOUNS[word]
                if token.start() == 0:
                    replacement = replacement[:1].upper() + replacement[1:]
                out.append(sentence[cursor:token.start()] + replacement)
                cursor = token.end()
        resolved.append("".join(out) + sentence[cursor:])
        if phrases:
            antecedent = _definite(phrases[-1][2])
    return resolved


class RuleBasedDecomposer:
    """Sentence split + pronoun resolution to the last noun phrase (fast, no model). ``splitter``: "regex"
    (exact on ShapesWorld) or "pysbd" (real captions), as in ``vlforge.common.text.split_sentences``."""

    def __init__(self, splitter: str = "regex") -> None:
        self.splitter = splitter

    def __call__(self, caption: str) -> list[str]:
        return resolve_pronouns(split_sentences(caption, self.splitter))
