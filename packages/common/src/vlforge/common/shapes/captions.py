"""Ground-truth captions written from a scene graph: short (SSC-like), descriptive and dense.

Short and descriptive captions are made in two steps so that negatives can re-use the exact wording: a *plan*
(a JSON-able dict: kind, template, mentioned object ids, whether sizes are said, the relation said) is drawn
with the record's rng, and ``render_plan(plan, objects, background)`` writes it. A negative perturbs the
objects or the plan's relation and renders the same plan again (see ``negatives.py``).

``canonical_dense_caption`` writes the dense caption with the first wording of every alternative and no relation
turned round: one text per scene (the critic's image description, ``vlforge.critic.critique``).

Bounds: short captions have 8-15 whitespace tokens, descriptive ones at most 40 (objects with sizes and
colours, one relation when there are two or more objects, the background). Dense captions say everything in
several sentences: the count and background, each object with its size, colour and region, every relation, the
sign.
"""

from __future__ import annotations

import random
from typing import Any

from vlforge.common.shapes.grammar import (
    RELATION_PHRASES,
    background_phrase,
    capitalise,
    count_phrase,
    join_list,
    noun_phrase,
    region_phrase,
)
from vlforge.common.shapes.vocabulary import INVERSE_RELATION

SHORT_TOKENS = (8, 15)
DESCRIPTIVE_MAX_TOKENS = 40
SHORT_TEMPLATES = 6
DESCRIPTIVE_TEMPLATES = 4
RELATION_TEMPLATES = 3


def _relation_phrase(relation: dict[str, Any]) -> str:
    phrases = RELATION_PHRASES[relation["relation"]]
    return phrases[relation["phrase"] % len(phrases)]


def _relation_sentence(relation: dict[str, Any], objects: list[dict[str, Any]]) -> str:
    subject = noun_phrase(objects[relation["subject"]], with_size=False, definite=True)
    obj = noun_phrase(objects[relation["object"]], with_size=False, definite=True)
    phrase = _relation_phrase(relation)
    if relation["template"] == 0:
        return f"{capitalise(subject)} is {phrase} {obj}."
    if relation["template"] == 1:
        return f"{capitalise(subject)} sits {phrase} {obj}."
    return f"{capitalise(phrase)} {obj} is {subject}."


def render_plan(plan: dict[str, Any], objects: list[dict[str, Any]], background: dict[str, Any]) -> str:
    """Write a short or descriptive caption plan for these objects (possibly perturbed copies of the
    scene's)."""
    mentioned = [objects[i] for i in plan["mentioned"]]
    listed = join_list([noun_phrase(o, with_size=plan["sizes"]) for o in mentioned])
    bg = background_phrase(background, always_texture=plan["kind"] == "short")
    t = plan["template"]
    relation = plan["relation"]
    if plan["kind"] == "short":
        if t == 0:
            return f"{capitalise(listed)} on a {bg} background."
        if t == 1:
            return f"A {bg} background with {listed}."
        if t == 2:
            return f"An image showing {listed} on {bg}."
        if t == 3:
            return f"{capitalise(listed)} {region_phrase(mentioned[0]['region'])} of a {bg} image."
        if t == 4:
            phrase = _relation_phrase(relation)
            subject, obj = objects[relation["subject"]], objects[relation["object"]]
            return (f"{capitalise(noun_phrase(subject, plan['sizes']))} {phrase} "
                    f"{noun_phrase(obj, plan['sizes'])} on {bg}.")
        return f"{capitalise(count_phrase(plan['count']))} on {bg}, including {listed}."
    tail = f" {_relation_sentence(relation, objects)}" if relation else ""
    if t == 0:
        return f"{capitalise(listed)} on a {bg} background.{tail}"
    if t == 1:
        return f"A {bg} background with {listed}.{tail}"
    if t == 2:
        return f"This image shows {listed} on a {bg} background.{tail}"
    return f"{capitalise(count_phrase(plan['count']))} on {bg}: {listed}.{tail}"


def _said_relation(rng: random.Random, scene: dict[str, Any]) -> dict[str, Any] | None:
    if not scene["relations"]:
        return None
    rel = dict(rng.choice(scene["relations"]))
    if rng.random() < 0.5:
        rel = {"subject": rel["object"], "relation": INVERSE_RELATION[rel["relation"]],
               "object": rel["subject"]}
    rel["phrase"] = rng.randrange(3)
    rel["template"] = rng.randrange(RELATION_TEMPLATES)
    return rel


def _tokens(text: str) -> int:
    return len(text.split())


def short_plan(rng: random.Random, scene: dict[str, Any]) -> dict[str, Any]:
    """Draw a short-caption plan whose text has 8-15 whitespace tokens, mentioning as many objects as fit."""
    objects, n = scene["objects"], len(scene["objects"])
    relation = _said_relation(rng, scene)
    lo, hi = SHORT_TOKENS
    for k in range(n, 0, -1):
        candidates = []
        for template in range(SHORT_TEMPLATES):
            if (template == 3 and k != 1) or (template == 4 and (relation is None or k != 2 or n != 2)) or \
                    (template == 5) != (k < n):
                continue
            for sizes in (True, False):
                plan = {"kind": "short", "template": template, "mentioned": list(range(k)), "sizes": sizes,
                        "relation": relation if template == 4 else None, "count": n}
                if lo <= _tokens(render_plan(plan, objects, scene["background"])) <= hi:
                    candidates.append(plan)
        if candidates:
            return rng.choice(candidates)
    raise AssertionError(f"no short caption fits {SHORT_TOKENS} tokens for scene {scene}")


def descriptive_plan(rng: random.Random, scene: dict[str, Any]) -> dict[str, Any]:
    """Draw a descriptive plan (all objects, one relation if any, the background) of at most 40 tokens."""
    objects, n = scene["objects"], len(scene["objects"])
    relation = _said_relation(rng, scene)
    for sizes, rel in ((True, relation), (False, relation), (False, None)):
        candidates = []
        for template in range(DESCRIPTIVE_TEMPLATES):
            plan = {"kind": "descriptive", "template": template, "mentioned": list(range(n)), "sizes": sizes,
                    "relation": rel, "count": n}
            if _tokens(render_plan(plan, objects, scene["background"])) <= DESCRIPTIVE_MAX_TOKENS:
                candidates.append(plan)
        if candidates:
            return rng.choice(candidates)
    raise AssertionError(f"no descriptive caption fits {DESCRIPTIVE_MAX_TOKENS} tokens for scene {scene}")


def _pair_sentence(rng: random.Random, a: dict[str, Any], b: dict[str, Any], relations: list[str]) -> str:
    phrases = [RELATION_PHRASES[r][rng.randrange(len(RELATION_PHRASES[r]))] for r in relations]
    if len(phrases) == 2 and rng.random() < 0.5:
        phrases.reverse()
    return f"{capitalise(noun_phrase(a, False, definite=True))} is {' and '.join(phrases)} " \
           f"{noun_phrase(b, False, definite=True)}."


def dense_caption(rng: random.Random, scene: dict[str, Any]) -> str:
    """Several sentences covering every object, attribute, region, relation, the sign and the background."""
    objects, bg = scene["objects"], scene["background"]
    n = len(objects)
    on_bg = f"{count_phrase(n)} on a {background_phrase(bg)} background."
    holds = f"A {background_phrase(bg, always_texture=True)} background holds {count_phrase(n)}."
    opening = rng.choice((f"The image shows {on_bg}", f"There {'is' if n == 1 else 'are'} {on_bg}", holds))
    sentences = [opening]
    for obj in objects:
        where = region_phrase(obj["region"])
        sentences.append(rng.choice((f"There is {noun_phrase(obj)} {where}.",
                                     f"{capitalise(noun_phrase(obj))} sits {where}.",
                                     f"{capitalise(where)}, there is {noun_phrase(obj)}.")))
    by_pair: dict[tuple[int, int], list[str]] = {}
    for rel in scene["relations"]:
        by_pair.setdefault((rel["subject"], rel["object"]), []).append(rel["relation"])
    for (i, j), relations in by_pair.items():
        if rng.random() < 0.5:
            i, j, relations = j, i, [INVERSE_RELATION[r] for r in relations]
        sentences.append(_pair_sentence(rng, objects[i], objects[j], relations))
    sign = scene["sign"]
    if sign is not None:
        sentences.append(rng.choice((f'A sign {region_phrase(sign["region"])} reads "{sign["word"]}".',
                                     f'{capitalise(region_phrase(sign["region"]))}, a small sign says '
                                     f'"{sign["word"]}".')))
    return " ".join(sentences)


class _FirstWording:
    """An rng stand-in for ``dense_caption`` that takes the first of every alternative and never turns a relation
    round (``random() < 0.5`` is false)."""

    @staticmethod
    def choice(options: Any) -> Any:
        return options[0]

    @staticmethod
    def randrange(n: int) -> int:
        return 0

    @staticmethod
    def random() -> float:
        return 0.5


def canonical_dense_caption(scene: dict[str, Any]) -> str:
    """The dense caption in its first wordings: "The image shows two shapes on a grey background. There is a
    large red circle in the top left. ... The red circle is to the left of the blue star." """
    return dense_caption(_FirstWording(), scene)  # type: ignore[arg-type]
