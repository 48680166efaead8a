"""Atomic facts (for critics): one short true sentence per object attribute, per relation, for the background
and the sign. Stored as a list of sentences in ``record.meta["atomic_facts"]``.

Per object: its colour with its shape ("There is a red circle."), its size ("The red circle is large."), its
region ("The red circle is in the top left."). Per relation in the scene graph: "The red circle is to the left
of the blue star." Then "The background is grey.", "The background is striped." when textured, and 'There is a
sign that reads "Sale".' when there is a sign.
"""

from __future__ import annotations

from typing import Any

from vlforge.common.shapes.grammar import RELATION_PHRASES, capitalise, noun_phrase, region_phrase


def atomic_facts(scene: dict[str, Any]) -> list[str]:
    objects = scene["objects"]
    facts = []
    for obj in objects:
        name = noun_phrase(obj, with_size=False, definite=True)
        facts.append(f"There is {noun_phrase(obj, with_size=False)}.")
        facts.append(f"{capitalise(name)} is {obj['size']}.")
        facts.append(f"{capitalise(name)} is {region_phrase(obj['region'])}.")
    for rel in scene["relations"]:
        subject = noun_phrase(objects[rel["subject"]], False, definite=True)
        obj = noun_phrase(objects[rel["object"]], False, definite=True)
        facts.append(f"{capitalise(subject)} is {RELATION_PHRASES[rel['relation']][0]} {obj}.")
    facts.append(f"The background is {scene['background']['colour']}.")
    if scene["background"]["texture"] != "plain":
        facts.append(f"The background is {scene['background']['texture']}.")
    if scene["sign"] is not None:
        facts.append(f'There is a sign that reads "{scene["sign"]["word"]}".')
    return facts
