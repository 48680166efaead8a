"""Critiques written from a ShapesWorld scene graph, in the structure of the ultra-detailed caption paper's Fig. 14:
the key points the sentence asserts, each point checked against the image (with what the image really shows), a
summary, and a last line ``Verdict: consistent|inconsistent``.

The key points are the facts ``shapes_facts.sentence_facts`` reads from the sentence, plus a shape count ("There
are three shapes."). A sentence from which no fact can be read gets no critique (``None``): it is unscored, never
judged consistent.
"""

from __future__ import annotations

import re
from typing import Any

from vlforge.common.shapes.grammar import NUMBER_WORDS, RELATION_PHRASES, article, join_list, region_phrase
from vlforge.critic.shapes_facts import Fact, scene_facts, sentence_facts
from vlforge.critic.verdicts import verdict_line

FACT_ORDER = ("exists", "size", "region", "relation", "background", "texture", "sign", "count")
_COUNT = re.compile(rf"\bthere (?:is|are) ({'|'.join(NUMBER_WORDS)}) shapes?\b", re.IGNORECASE)


def count_fact(sentence: str) -> Fact | None:
    match = _COUNT.search(sentence)
    return ("count", NUMBER_WORDS.index(match.group(1).lower())) if match else None


def _name(colour: str, shape: str) -> str:
    return f"the {colour} {shape}"


def _objects_like(scene: dict[str, Any], colour: str, shape: str) -> list[dict[str, Any]]:
    return [o for o in scene["objects"] if o["shape"] == shape or o["colour"] == colour]


def _point(fact: Fact) -> str:
    kind = fact[0]
    if kind == "exists":
        return f"Object: {article(fact[1])} {fact[1]} {fact[2]} is present"
    if kind == "size":
        return f"Size: {_name(fact[1], fact[2])} is {fact[3]}"
    if kind == "region":
        return f"Position: {_name(fact[1], fact[2])} is {region_phrase(fact[3])}"
    if kind == "relation":
        return f"Relation: {_name(*fact[1])} is {RELATION_PHRASES[fact[2]][0]} {_name(*fact[3])}"
    if kind == "background":
        return f"Background colour: {fact[1]}"
    if kind == "texture":
        return f"Background texture: {fact[1]}"
    if kind == "sign":
        return f'Text: a sign reads "{fact[1]}"'
    return f"Quantity: {NUMBER_WORDS[fact[1]]} shape{'s' if fact[1] != 1 else ''}"


def _object(scene: dict[str, Any], colour: str, shape: str) -> dict[str, Any] | None:
    return next((o for o in scene["objects"] if o["colour"] == colour and o["shape"] == shape), None)


def _actual(fact: Fact, scene: dict[str, Any]) -> str:
    """What the image shows instead of a false fact."""
    kind = fact[0]
    if kind in ("exists", "size", "region") and _object(scene, fact[1], fact[2]) is None:
        similar = [f"{article(o['colour'])} {o['colour']} {o['shape']} {region_phrase(o['region'])}"
                   for o in _objects_like(scene, fact[1], fact[2])]
        there = f"; the image has {join_list(similar)}" if similar else ""
        return f"there is no {fact[1]} {fact[2]} in the image{there}"
    if kind == "size":
        return f"{_name(fact[1], fact[2])} is {_object(scene, fact[1], fact[2])['size']}"
    if kind == "region":
        return f"{_name(fact[1], fact[2])} is {region_phrase(_object(scene, fact[1], fact[2])['region'])}"
    if kind == "relation":
        for colour_shape in (fact[1], fact[3]):
            if _object(scene, *colour_shape) is None:
                return f"there is no {' '.join(colour_shape)} in the image"
        true = [f for f in scene_facts(scene) if f[0] == "relation" and {f[1], f[3]} == {fact[1], fact[3]}]
        said = [f"{_name(*f[1])} is {RELATION_PHRASES[f[2]][0]} {_name(*f[3])}" for f in true]
        return join_list(said) if said else "neither is clearly beside, above or below the other"
    if kind == "background":
        return f"the background is {scene['background']['colour']}"
    if kind == "texture":
        return f"the background is {scene['background']['texture']}"
    if kind == "sign":
        sign = scene["sign"]
        return f'the sign reads "{sign["word"]}"' if sign else "there is no sign in the image"
    count = len(scene["objects"])
    return f"the image has {NUMBER_WORDS[count]} shape{'s' if count != 1 else ''}"


def judge(sentence: str, scene: dict[str, Any]) -> tuple[bool, list[tuple[Fact, bool]]] | None:
    """(consistent, [(fact, holds)]) for the facts the sentence states, or None when it states none readable."""
    facts = sorted(sentence_facts(sentence), key=lambda f: (FACT_ORDER.index(f[0]), str(f)))
    count = count_fact(sentence)
    if count is not None:
        facts.append(count)
    if not facts:
        return None
    truth = scene_facts(scene)
    checks = [(f, (f[1] == len(scene["objects"])) if f[0] == "count" else f in truth) for f in facts]
    return all(holds for _, holds in checks), checks


def write_critique(sentence: str, scene: dict[str, Any]) -> tuple[str, bool] | None:
    """(critique text, consistent) in Fig. 14's structure, or None for a sentence with no readable fact."""
    judged = judge(sentence, scene)
    if judged is None:
        return None
    consistent, checks = judged
    lines = ["Key points to check:"]
    lines += [f"{i}. {_point(fact)}" for i, (fact, _) in enumerate(checks, start=1)]
    lines.append("Checking each point against the image:")
    for i, (fact, holds) in enumerate(checks, start=1):
        lines.append(f"{i}. {_point(fact)}: " + ("matches the image." if holds else
                                                   f"does not match: {_actual(fact, scene)}."))
    wrong = [_actual(fact, scene) for fact, holds in checks if not holds]
    if consistent:
        lines.append("Summary: every point of the sentence matches the image.")
    else:
        lines.append(f"Summary: the sentence does not match the image: {'; '.join(dict.fromkeys(wrong))}.")
    lines.append(verdict_line(consistent))
    return "\n".join(lines), consistent
