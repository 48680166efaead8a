"""ARO / SugarCrepe-style hard negatives: a positive caption's plan rendered again after one perturbation.

- ``attribute_swap``: two mentioned objects exchange colours ("a blue circle and a red star" for "a red circle
  and a blue star"), used only when at least one swapped (colour, shape) pair is absent from the scene;
- ``relation_swap``: the said relation's subject and object exchange places ("the blue star is left of the red
  circle"); false because relations hold with a margin;
- ``object_replacement``: one mentioned object's shape becomes a shape that the scene has in no object of that
  colour.

Each negative is a ``Caption(source="gt", kind="negative")`` whose provenance names the perturbation, the
positive's kind and text, so ARO-style evaluation can pair them.
"""

from __future__ import annotations

import random
from typing import Any

from vlforge.common.records import Caption
from vlforge.common.shapes.captions import render_plan

PERTURBATIONS = ("attribute_swap", "relation_swap", "object_replacement")


def _present(objects: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(o["colour"], o["shape"]) for o in objects}


def attribute_swap(rng: random.Random, plan: dict[str, Any], objects: list[dict[str, Any]]):
    present = _present(objects)

    def swap_is_false(a: dict[str, Any], b: dict[str, Any]) -> bool:
        swapped = {(b["colour"], a["shape"]), (a["colour"], b["shape"])}
        return a["colour"] != b["colour"] and bool(swapped - present)

    pairs = [(i, j) for i in plan["mentioned"] for j in plan["mentioned"]
             if i < j and swap_is_false(objects[i], objects[j])]
    if not pairs:
        return None
    i, j = rng.choice(pairs)
    swapped = [dict(o) for o in objects]
    swapped[i]["colour"], swapped[j]["colour"] = objects[j]["colour"], objects[i]["colour"]
    return plan, swapped


def relation_swap(rng: random.Random, plan: dict[str, Any], objects: list[dict[str, Any]]):
    relation = plan["relation"]
    if relation is None:
        return None
    swapped = dict(plan, relation=dict(relation, subject=relation["object"], object=relation["subject"]))
    return swapped, objects


def object_replacement(rng: random.Random, plan: dict[str, Any], objects: list[dict[str, Any]],
                       shapes: tuple[str, ...]):
    present = _present(objects)
    options = [(i, s) for i in plan["mentioned"] for s in shapes if (objects[i]["colour"], s) not in present]
    if not options:
        return None
    i, shape = rng.choice(options)
    replaced = [dict(o) for o in objects]
    replaced[i]["shape"] = shape
    return plan, replaced


def negatives_for(rng: random.Random, positive: Caption, plan: dict[str, Any], scene: dict[str, Any],
                  shapes: tuple[str, ...]) -> list[Caption]:
    """One negative per applicable perturbation of ``positive`` (written from ``plan``)."""
    objects = scene["objects"]
    made = {"attribute_swap": attribute_swap(rng, plan, objects),
            "relation_swap": relation_swap(rng, plan, objects),
            "object_replacement": object_replacement(rng, plan, objects, shapes)}
    negatives = []
    for name in PERTURBATIONS:
        if made[name] is None:
            continue
        new_plan, new_objects = made[name]
        text = render_plan(new_plan, new_objects, scene["background"])
        if text != positive.text:
            provenance = {"generator": "shapesworld", "perturbation": name, "positive_kind": positive.kind,
                          "positive_text": positive.text}
            negatives.append(Caption(text=text, source="gt", kind="negative", provenance=provenance))
    return negatives
