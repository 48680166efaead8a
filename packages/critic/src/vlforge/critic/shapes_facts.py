"""ShapesWorld facts as tuples, to measure decomposition and to judge sentences against a scene graph.

A fact is one of ``("exists", colour, shape)``, ``("size", colour, shape, size)``, ``("region", colour, shape,
region)``, ``("relation", (colour, shape), relation, (colour, shape))`` (stored with the subject before the object
in sorted order, the relation flipped when needed), ``("background", colour)``, ``("texture", texture)`` and
``("sign", word)`` — the kinds the scene graph's atomic facts state (``vlforge.common.shapes.facts``).

``sentence_facts`` reads the facts a sentence states on its own, in ShapesWorld's canonical vocabulary; a pronoun
or any word it does not know contributes nothing, so a sentence that is not self-contained loses its facts.
"""

from __future__ import annotations

import re
from typing import Any

from vlforge.common.shapes.vocabulary import BACKGROUND_TEXTURES, BACKGROUNDS, COLOURS, INVERSE_RELATION, SHAPES, SIZES

Fact = tuple

_RELATION_WORDS = [("to the left of", "left of"), ("to the right of", "right of"), ("left of", "left of"),
                   ("right of", "right of"), ("above", "above"), ("below", "below"), ("beneath", "below"),
                   ("under", "below")]
_REGION = re.compile(r"\b(?:in|at|on) the (top left|top right|bottom left|bottom right|top|bottom|left|right|centre)\b")
_NOUN_PHRASE = re.compile(rf"\b(?:({'|'.join(SIZES)}) )?({'|'.join(COLOURS)}) ({'|'.join(SHAPES)})s?\b")
_QUOTED = re.compile(r"\"([^\"]+)\"")


def relation_fact(subject: tuple[str, str], relation: str, obj: tuple[str, str]) -> Fact:
    if obj < subject:
        subject, relation, obj = obj, INVERSE_RELATION[relation], subject
    return ("relation", subject, relation, obj)


def scene_facts(scene: dict[str, Any]) -> set[Fact]:
    """Every fact of a scene graph (the tuples behind ``atomic_facts(scene)``)."""
    facts: set[Fact] = set()
    objects = scene["objects"]
    for obj in objects:
        key = (obj["colour"], obj["shape"])
        facts |= {("exists", *key), ("size", *key, obj["size"]), ("region", *key, obj["region"])}
    for rel in scene["relations"]:
        a, b = objects[rel["subject"]], objects[rel["object"]]
        facts.add(relation_fact((a["colour"], a["shape"]), rel["relation"], (b["colour"], b["shape"])))
    facts.add(("background", scene["background"]["colour"]))
    if scene["background"]["texture"] != "plain":
        facts.add(("texture", scene["background"]["texture"]))
    if scene["sign"] is not None:
        facts.add(("sign", scene["sign"]["word"]))
    return facts


def _relations(text: str) -> list[str]:
    found, rest = [], text
    for words, relation in _RELATION_WORDS:
        if re.search(rf"\b{words}\b", rest):
            found.append(relation)
            rest = re.sub(rf"\b{words}\b", " ", rest)
    return found


def sentence_facts(sentence: str) -> set[Fact]:
    """The facts one sentence states by itself (see the module docstring)."""
    text = sentence.lower()
    facts: set[Fact] = set()
    if "sign" in text:
        return {("sign", word) for word in _QUOTED.findall(sentence)}
    phrases = list(_NOUN_PHRASE.finditer(text))
    for match in phrases:
        size, colour, shape = match.groups()
        facts.add(("exists", colour, shape))
        if size:
            facts.add(("size", colour, shape, size))
    outside = _NOUN_PHRASE.sub(" ", text)
    if len(phrases) == 1:
        colour, shape = phrases[0].group(2), phrases[0].group(3)
        region = _REGION.search(outside)
        if region:
            facts.add(("region", colour, shape, region.group(1)))
        said_size = re.search(rf"\bis ({'|'.join(SIZES)})\b", outside)
        if said_size:
            facts.add(("size", colour, shape, said_size.group(1)))
    if len(phrases) == 2:
        first, second = ((m.group(2), m.group(3)) for m in phrases)
        subject, obj = (second, first) if _starts_with_relation(text) else (first, second)
        facts |= {relation_fact(subject, relation, obj) for relation in _relations(outside)}
    if "background" in outside:
        facts |= {("background", c) for c in BACKGROUNDS if re.search(rf"\b{c}\b", outside)}
        facts |= {("texture", t) for t in BACKGROUND_TEXTURES[1:] if re.search(rf"\b{t}\b", outside)}
    return facts


def _starts_with_relation(text: str) -> bool:
    return any(text.startswith(words) for words, _ in _RELATION_WORDS)


def caption_facts(sentences: list[str]) -> set[Fact]:
    """The union of the facts of each sentence."""
    return set().union(*(sentence_facts(s) for s in sentences)) if sentences else set()
