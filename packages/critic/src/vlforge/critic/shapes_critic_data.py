"""Critic training examples from ShapesWorld scene graphs (#12 item 2): (image, atomic sentence) → critique +
verdict.

True sentences are the record's atomic facts, one shape count ("There are three shapes.", so that a count
sentence is not always false) and each object described in the colour / shape errors' template ("There is a
large red circle in the top left.", so that this template is not always false). False sentences, one per error
type the paper's appendix E shows where the scene allows it:

- ``colour``: a real object with a colour no object of that shape has ("There is a large blue circle in the top
  left." for a red one);
- ``shape``: a real object with a shape no object of that colour has;
- ``count``: a wrong number of shapes;
- ``position``: a real object in a region it is not in;
- ``relation``: a real relation reversed ("the red circle is to the right of the blue star" when it is left);
- ``absent_object``: an object (colour and shape) that is not in the image.

Every example's critique and verdict are written by ``critique.write_critique`` from the scene graph, so a false
sentence is judged inconsistent because the scene graph says so, not because it was made false.

With ``captioner_sources`` (the paper's active-learning step, §4.1), the sentences of the record's captions of those
sources — a trained captioner's own captions in the store — are added too (``error_type`` "captioner"), each
decomposed (``RuleBasedDecomposer``) and judged against the scene graph like the others; sentences with no readable
fact are left out.

Balanced per sentence template (``sentence_template``): of each record's sentences, every template keeps as many
true as false ones, so a critic that reads only the text cannot beat 50 % (with true/false balanced only overall,
the templates' label frequencies gave a text-only critic 66 %). Templates never false here (size, background,
sign sentences) are left out when balancing, and so are count sentences of a one-shape scene ("There is one
shape." has no false sentence in its template in the same scene).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from vlforge.common.records import ImageRecord
from vlforge.common.shapes.grammar import NUMBER_WORDS, RELATION_PHRASES, article, capitalise, region_phrase
from vlforge.common.shapes.vocabulary import BACKGROUND_CLASHES, COLOURS, INVERSE_RELATION, SHAPES, SIZES
from vlforge.critic.critique import write_critique
from vlforge.critic.decompose import RuleBasedDecomposer

ERROR_TYPES = ("colour", "shape", "count", "position", "relation", "absent_object")
CAPTIONER = "captioner"
MAX_SHAPES = 4  # ShapesWorldConfig.max_objects is at most 4
REGIONS = ("top left", "top", "top right", "left", "centre", "right", "bottom left", "bottom", "bottom right")


@dataclass
class CriticExample:
    """One (image, sentence) → critique row; ``error_type`` is "none" for a true sentence."""

    image_id: str
    sentence: str
    critique: str
    consistent: bool
    error_type: str


def _present(scene: dict[str, Any]) -> set[tuple[str, str]]:
    return {(o["colour"], o["shape"]) for o in scene["objects"]}


def _allowed_colours(scene: dict[str, Any]) -> list[str]:
    return [c for c in COLOURS if c not in BACKGROUND_CLASHES[scene["background"]["colour"]]]


def _count_sentence(n: int) -> str:
    return f"There {'is' if n == 1 else 'are'} {NUMBER_WORDS[n]} shape{'' if n == 1 else 's'}."


def false_sentence(rng: random.Random, scene: dict[str, Any], error_type: str) -> str | None:
    """A false sentence of ``error_type`` about ``scene``, or None when the scene allows none."""
    objects, present = scene["objects"], _present(scene)
    obj = rng.choice(objects)
    where = region_phrase(obj["region"])
    if error_type == "colour":
        colours = [c for c in _allowed_colours(scene) if (c, obj["shape"]) not in present]
        return f"There is a {obj['size']} {rng.choice(colours)} {obj['shape']} {where}." if colours else None
    if error_type == "shape":
        shapes = [s for s in SHAPES if (obj["colour"], s) not in present]
        return f"There is a {obj['size']} {obj['colour']} {rng.choice(shapes)} {where}." if shapes else None
    if error_type == "count":  # the true count's template ("There are N shapes.") where one exists; a number
        # some scene has, so that the number word alone does not tell a false count
        wrong = [n for n in range(1 if len(objects) == 1 else 2, MAX_SHAPES + 1) if n != len(objects)]
        return _count_sentence(rng.choice(wrong))
    if error_type == "position":
        regions = [r for r in REGIONS if r != obj["region"]]
        return f"The {obj['colour']} {obj['shape']} is {region_phrase(rng.choice(regions))}."
    if error_type == "relation":
        if not scene["relations"]:
            return None
        rel = rng.choice(scene["relations"])
        a, b = objects[rel["subject"]], objects[rel["object"]]
        phrase = RELATION_PHRASES[INVERSE_RELATION[rel["relation"]]][0]
        return f"The {a['colour']} {a['shape']} is {phrase} the {b['colour']} {b['shape']}."
    if error_type == "absent_object":
        pairs = [(c, s) for c in _allowed_colours(scene) for s in SHAPES if (c, s) not in present]
        colour, shape = rng.choice(pairs)
        return capitalise(f"there is {article(colour)} {colour} {shape}.")
    raise ValueError(f"unknown error type {error_type!r}")


_PLACEHOLDERS = {**dict.fromkeys(COLOURS, "C"), **dict.fromkeys(SHAPES, "S"), **dict.fromkeys(SIZES, "Z"),
                 **dict.fromkeys(NUMBER_WORDS, "N"), **dict.fromkeys(("top", "bottom", "left", "right", "centre"), "R")}


def sentence_template(sentence: str) -> str:
    """The sentence lower-cased with its colour (C), shape (S), size (Z), number (N) and region (R) words replaced
    by placeholders ("There is a small red circle on the left." -> "there is a Z C S on the R")."""
    out = [_PLACEHOLDERS.get(w.lower().rstrip("."), _PLACEHOLDERS.get(w.lower().rstrip(".s"), w.lower()))
           for w in sentence.split()]
    return " ".join(o for i, o in enumerate(out) if not (o == "R" and i and out[i - 1] == "R"))


def described(obj: dict[str, Any]) -> str:
    """A true sentence in the template of the colour and shape errors: "There is a small red circle on the left."."""
    return f"There is a {obj['size']} {obj['colour']} {obj['shape']} {region_phrase(obj['region'])}."


def balance_templates(examples: list[CriticExample], rng: random.Random) -> list[CriticExample]:
    """Per sentence template, as many consistent as inconsistent examples: ``min(true, false)`` of each drawn
    with ``rng``, the rest dropped; the examples keep their order."""
    by_template: dict[tuple[str, bool], list[int]] = {}
    for index, example in enumerate(examples):
        by_template.setdefault((sentence_template(example.sentence), example.consistent), []).append(index)
    kept: set[int] = set()
    for (template, consistent), indices in by_template.items():
        if consistent:
            false = by_template.get((template, False), [])
            keep = min(len(indices), len(false))
            kept.update(rng.sample(indices, keep) + rng.sample(false, keep))
    return [example for index, example in enumerate(examples) if index in kept]


def captioner_sentences(record: ImageRecord, sources: Sequence[str]) -> list[str]:
    """The atomic sentences of the record's captions of ``sources``, in caption order, without repeats."""
    decompose = RuleBasedDecomposer()
    sentences = [s for c in record.captions if c.source in sources and c.text.strip() for s in decompose(c.text)]
    return list(dict.fromkeys(sentences))


def critic_examples(record: ImageRecord, rng: random.Random, balance: bool = True,
                    describe_first: bool = False, observe_first: bool = False,
                    captioner_sources: Sequence[str] = ()) -> list[CriticExample]:
    """The record's critic examples: false sentences of every error type the scene allows, and true sentences
    (all of them, or when ``balance`` as many per sentence template as there are false ones: ``balance_templates``).
    The true ones are the atomic facts, the shape count and each object described in the colour / shape errors'
    template, so that no sentence template is false by itself. ``describe_first``: critiques open with the image's
    description, ``observe_first``: each check states what the image shows before it judges
    (``critique.write_critique``); the sentences and verdicts are the same. ``captioner_sources``: see the module
    docstring."""
    scene = record.meta["scene_graph"]
    true_sentences = (list(record.meta["atomic_facts"]) + [_count_sentence(len(scene["objects"]))]
                      + [described(o) for o in scene["objects"]])
    false = [(t, s) for t in ERROR_TYPES if (s := false_sentence(rng, scene, t)) is not None]
    examples = []
    mined = [(CAPTIONER, s) for s in captioner_sentences(record, captioner_sources)]
    for error_type, sentence in [("none", s) for s in true_sentences] + false + mined:
        written = write_critique(sentence, scene, describe_first, observe_first)
        if written is None:
            continue
        critique, consistent = written
        examples.append(CriticExample(record.image_id, sentence, critique, consistent, error_type))
    return balance_templates(examples, rng) if balance else examples
