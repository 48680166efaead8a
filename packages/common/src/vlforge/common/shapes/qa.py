"""Question-answer pairs for MLLM evaluation, stored in ``record.meta["qa"]`` as a list of
``{"type", "question", "answer"}`` with types ``colour``, ``count``, ``position``, ``presence`` (POPE-style
yes/no: every object present is asked about, and as many absent objects, half of them "adversarial", i.e. a
present shape in an absent colour) and ``text`` (the sign's word). Answers are lower-case words or digits.
"""

from __future__ import annotations

import random
from typing import Any

from vlforge.common.shapes.grammar import article, noun_phrase, region_phrase
from vlforge.common.shapes.vocabulary import SHAPE_PLURALS


def _locator(obj: dict[str, Any], objects: list[dict[str, Any]]) -> str:
    """A description that picks out ``obj`` without naming its colour ("" when none does)."""
    same_shape = [o for o in objects if o["shape"] == obj["shape"]]
    if len(same_shape) == 1:
        return f"the {obj['shape']}"
    if sum(o["size"] == obj["size"] for o in same_shape) == 1:
        return f"the {obj['size']} {obj['shape']}"
    if sum(o["region"] == obj["region"] for o in same_shape) == 1:
        return f"the {obj['shape']} {region_phrase(obj['region'])}"
    return ""


def qa_pairs(rng: random.Random, scene: dict[str, Any], shapes: tuple[str, ...],
             colours: tuple[str, ...]) -> list[dict[str, str]]:
    objects = scene["objects"]
    qa = [{"type": "count", "question": "How many shapes are there?", "answer": str(len(objects))}]
    shape = rng.choice(shapes)
    qa.append({"type": "count", "question": f"How many {SHAPE_PLURALS[shape]} are there?",
               "answer": str(sum(o["shape"] == shape for o in objects))})
    for obj in objects:
        locator = _locator(obj, objects)
        if locator:
            qa.append({"type": "colour", "question": f"What colour is {locator}?", "answer": obj["colour"]})
        qa.append({"type": "position", "question": f"Where is {noun_phrase(obj, False, definite=True)}?",
                   "answer": obj["region"]})
    present = {(o["colour"], o["shape"]) for o in objects}
    absent_adversarial = [(c, o["shape"]) for o in objects for c in colours if (c, o["shape"]) not in present]
    absent_random = [(c, s) for c in colours for s in shapes if (c, s) not in present]
    absent = []
    for k in range(len(objects)):
        pool = absent_adversarial if k % 2 else absent_random
        pool = [p for p in pool if p not in absent] or [p for p in absent_random if p not in absent]
        if pool:
            absent.append(rng.choice(pool))
    asked = [((o["colour"], o["shape"]), "yes") for o in objects] + [(p, "no") for p in absent]
    rng.shuffle(asked)
    for (colour, shape_name), answer in asked:
        question = f"Is there {article(colour)} {colour} {shape_name} in the image?"
        qa.append({"type": "presence", "question": question, "answer": answer})
    if scene["sign"] is not None:
        qa.append({"type": "text", "question": "What word is written on the sign?",
                   "answer": scene["sign"]["word"].lower()})
    return qa
