"""Critiques written from a ShapesWorld scene graph, in the structure of the ultra-detailed caption paper's Fig. 14:
the key points the sentence asserts, each point checked against the image (with what the image really shows), a
summary, and a last line ``Verdict: consistent|inconsistent``.

With ``describe_first``, the critique opens with a description of the image (``describe``: the scene's dense
caption in its first wordings, ``canonical_dense_caption``, the text a captioner trained on the gt dense captions
writes; of the relations only those between the objects the sentence relates, of the sign only what the sentence
is about, so that it fits a tiny model's context; an object that is not there is then not followed by the objects
like it, which the description names) before the key points: each point is then checked against a
description already written, and the verdict no longer has to be read off the image at one token (chain of thought).

With ``observe_first``, each point's check first states what the image shows for it, whether the point holds or
not (the objects of its colour or shape, the named object's size or region, the relations between the pair, the
count), and only then judges: the judgement becomes a comparison of two texts in the context, and what the image
shows is supervised as generation (what a grounded captioner already does) instead of only through one verdict token.

The key points are the facts ``shapes_facts.sentence_facts`` reads from the sentence, plus a shape count ("There
are three shapes."). A sentence from which no fact can be read gets no critique (``None``): it is unscored, never
judged consistent.
"""

from __future__ import annotations

import re
from typing import Any

from vlforge.common.shapes.captions import canonical_dense_caption
from vlforge.common.shapes.grammar import NUMBER_WORDS, RELATION_PHRASES, article, join_list, region_phrase
from vlforge.common.shapes.vocabulary import INVERSE_RELATION
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


def _named_like(scene: dict[str, Any], colour: str, shape: str) -> list[str]:
    """The objects of ``colour`` or ``shape``, each as "a <colour> <shape> <region>"."""
    return [f"{article(o['colour'])} {o['colour']} {o['shape']} {region_phrase(o['region'])}"
            for o in _objects_like(scene, colour, shape)]


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


def _actual(fact: Fact, scene: dict[str, Any], name_similar: bool = True) -> str:
    """What the image shows instead of a false fact; for an object that is not there, the objects of its colour or
    shape when ``name_similar`` (without, when a description of the image came before)."""
    kind = fact[0]
    if kind in ("exists", "size", "region") and _object(scene, fact[1], fact[2]) is None:
        similar = _named_like(scene, fact[1], fact[2]) if name_similar else []
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
        true = sorted(f for f in scene_facts(scene) if f[0] == "relation" and {f[1], f[3]} == {fact[1], fact[3]})
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


def _like(scene: dict[str, Any], colour: str, shape: str) -> str:
    similar = _named_like(scene, colour, shape)
    return f"the image has {join_list(similar)}" if similar else f"the image has no {colour} shape and no {shape}"


def _observed(fact: Fact, scene: dict[str, Any]) -> str:
    """What the image shows for a point, the same whether the point holds or not: for an object (or one that is not
    there) the objects of its colour or shape, and "as in point 1" for the size or region of such an object (its
    object point comes first); otherwise the named object's true size, region or relations, the
    background, the sign or the count."""
    kind = fact[0]
    if kind == "exists":
        return _like(scene, fact[1], fact[2])
    if kind in ("size", "region") and _object(scene, fact[1], fact[2]) is None:
        return "as in point 1"
    if kind == "relation":
        for colour_shape in (fact[1], fact[3]):
            if _object(scene, *colour_shape) is None:
                return _like(scene, *colour_shape)
    return _actual(fact, scene)


def describe(scene: dict[str, Any], facts: list[Fact]) -> str:
    """The image as the sentence's check needs it: count, background and every object with its size, colour and
    region; the relations between each pair of objects a relation fact names (in the fact's direction); the sign
    when a fact is about it."""
    objects = scene["objects"]
    pairs = {(f[1], f[3]) for f in facts if f[0] == "relation"}
    relations = []
    for rel in scene["relations"]:
        subject, obj = (objects[rel[k]] for k in ("subject", "object"))
        pair = ((subject["colour"], subject["shape"]), (obj["colour"], obj["shape"]))
        if pair in pairs:
            relations.append(rel)
        elif pair[::-1] in pairs:
            relations.append({"subject": rel["object"], "relation": INVERSE_RELATION[rel["relation"]],
                              "object": rel["subject"]})
    sign = scene["sign"] if any(f[0] == "sign" for f in facts) else None
    return canonical_dense_caption({**scene, "relations": relations, "sign": sign})


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


def write_critique(sentence: str, scene: dict[str, Any], describe_first: bool = False,
                   observe_first: bool = False) -> tuple[str, bool] | None:
    """(critique text, consistent) in Fig. 14's structure, opened by the image's description when
    ``describe_first``, each check stating what the image shows before it judges when ``observe_first``; None for a
    sentence with no readable fact."""
    judged = judge(sentence, scene)
    if judged is None:
        return None
    consistent, checks = judged
    lines = [describe(scene, [fact for fact, _ in checks])] if describe_first else []
    lines.append("Key points to check:")
    lines += [f"{i}. {_point(fact)}" for i, (fact, _) in enumerate(checks, start=1)]
    lines.append("Checking each point against the image:")
    for i, (fact, holds) in enumerate(checks, start=1):
        if observe_first:
            lines.append(f"{i}. {_point(fact)}: {_observed(fact, scene)}; "
                         + ("matches the image." if holds else "does not match."))
        else:
            lines.append(f"{i}. {_point(fact)}: " + ("matches the image." if holds else
                                                       f"does not match: {_actual(fact, scene, not describe_first)}."))
    wrong = [_actual(fact, scene, not describe_first) for fact, holds in checks if not holds]
    if consistent:
        lines.append("Summary: every point of the sentence matches the image.")
    else:
        lines.append(f"Summary: the sentence does not match the image: {'; '.join(dict.fromkeys(wrong))}.")
    lines.append(verdict_line(consistent))
    return "\n".join(lines), consistent
