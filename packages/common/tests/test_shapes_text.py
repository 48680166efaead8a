"""ShapesWorld text: gt captions true to the scene and within bounds, negatives false, alt-text noise,
queries, atomic facts and QA pairs."""

from __future__ import annotations

import random
import re
import statistics
from collections import Counter

import pytest

from vlforge.common.shapes.build import generate_records, make_record
from vlforge.common.shapes.captions import canonical_dense_caption, descriptive_plan
from vlforge.common.shapes.config import ShapesWorldConfig
from vlforge.common.shapes.negatives import PERTURBATIONS
from vlforge.common.shapes.scene import sample_scene
from vlforge.common.shapes.vocabulary import COLOURS, RARE_COLOUR_WORDS, RARE_SHAPE_WORDS, SHAPES


@pytest.fixture(scope="module")
def records():
    return list(generate_records(300, seed=21, workers=1))


def _pairs(text: str) -> list[tuple[str, str]]:
    """(colour, shape) pairs named in a caption with canonical words."""
    words = re.findall(r"[a-z]+", text.lower())
    return [(a, b) for a, b in zip(words, words[1:]) if a in COLOURS and b in SHAPES]


def _scene_pairs(record) -> set[tuple[str, str]]:
    return {(o["colour"], o["shape"]) for o in record.meta["scene_graph"]["objects"]}


def _holds(a: dict, relation: str, b: dict, margin: float) -> bool:
    return {"left of": b["x"] - a["x"] > margin, "right of": a["x"] - b["x"] > margin,
            "above": b["y"] - a["y"] > margin, "below": a["y"] - b["y"] > margin}[relation]


def test_every_record_carries_every_caption_kind(records):
    for record in records:
        kinds = Counter((c.source, c.kind) for c in record.captions)
        assert kinds[("gt", "short")] == kinds[("gt", "descriptive")] == kinds[("gt", "dense")] == 1
        assert kinds[("alt_text", "free")] == 1 and kinds[("gt", "query")] == 2
        assert kinds[("gt", "negative")] >= 1
        assert {"scene_graph", "atomic_facts", "qa"} <= set(record.meta)


def test_ground_truth_captions_are_true_and_within_bounds(records):
    for record in records:
        scene = record.meta["scene_graph"]
        present = _scene_pairs(record)
        short, descriptive, dense = (record.captions_by("gt", kind)[0].text
                                     for kind in ("short", "descriptive", "dense"))
        assert 8 <= len(short.split()) <= 15, short
        assert len(descriptive.split()) <= 40, descriptive
        for text in (short, descriptive, dense):
            assert text == text.strip() and text[0].isupper() and text.endswith(".")
            assert _pairs(text) and set(_pairs(text)) <= present, (text, present)
        assert set(_pairs(descriptive)) == present == set(_pairs(dense))
        assert scene["background"]["colour"] in dense.split() and scene["background"]["colour"] in descriptive
        if scene["sign"] is not None:
            assert f'"{scene["sign"]["word"]}"' in dense
        assert len(dense.split(". ")) >= 1 + len(scene["objects"])


def test_canonical_dense_caption_is_one_text_per_scene_in_the_first_wordings(records):
    scene = make_record(14, 0, ShapesWorldConfig()).meta["scene_graph"]
    assert canonical_dense_caption(scene) == (
        "The image shows two shapes on a grey background. There is a small purple star on the left. There is a "
        "small blue circle in the bottom right. The purple star is to the left of and above the blue circle. "
        'A sign at the top reads "Sale".')
    for record in records:
        scene = record.meta["scene_graph"]
        text = canonical_dense_caption(scene)
        assert text == canonical_dense_caption(scene) and text.startswith("The image shows ")
        assert _pairs(text)[:len(scene["objects"])] == [(o["colour"], o["shape"]) for o in scene["objects"]]
        assert len(text.split(". ")) == len(record.captions_by("gt", "dense")[0].text.split(". "))


def test_said_relations_hold_and_their_swaps_do_not():
    config = ShapesWorldConfig()
    margin = config.relation_margin * config.image_size
    said = 0
    for index in range(200):
        rng = random.Random(index)
        scene = sample_scene(rng, config)
        relation = descriptive_plan(rng, scene)["relation"]
        if relation is None:
            assert len(scene["objects"]) == 1
            continue
        said += 1
        a, b = scene["objects"][relation["subject"]], scene["objects"][relation["object"]]
        assert _holds(a, relation["relation"], b, margin)
        assert not _holds(b, relation["relation"], a, margin)
    assert said > 100


def test_negatives_are_false_and_name_their_positive(records):
    made = Counter()
    for record in records:
        present = _scene_pairs(record)
        positives = {(c.kind, c.text) for c in record.captions if c.kind in ("short", "descriptive")}
        for negative in record.captions_by("gt", "negative"):
            name = negative.provenance["perturbation"]
            made[name] += 1
            positive = negative.provenance["positive_text"]
            assert (negative.provenance["positive_kind"], positive) in positives
            assert negative.text != positive
            if name == "relation_swap":
                words = sorted(re.findall(r"[a-z]+", negative.text.lower()))
                assert words == sorted(re.findall(r"[a-z]+", positive.lower()))
            else:
                assert set(_pairs(negative.text)) - present, (negative.text, present)
    assert set(made) == set(PERTURBATIONS) and min(made.values()) > 50


def test_alt_text_is_noisy_lower_case_and_about_eight_tokens(records):
    alt = [r.captions_by("alt_text")[0] for r in records]
    assert all(c.text == c.text.lower() == c.text.strip() for c in alt)
    assert 6.5 <= statistics.mean(len(c.text.split()) for c in alt) <= 10
    noise = Counter(n for c in alt for n in c.provenance["noise"])
    assert 0.02 < noise["mismatch"] / len(alt) < 0.2 and noise["filler"] > 0.3 * len(alt)
    assert noise["wrong_colour"] > 0 and noise["synonym"] > 0
    assert all(("mismatch" in c.provenance["noise"]) == c.provenance["mismatched"] for c in alt)


def test_alt_text_noise_rates_are_knobs():
    clean = ShapesWorldConfig(alt_one_object_rate=0.0, alt_wrong_colour_rate=0.0, alt_synonym_rate=0.0,
                              alt_filler_rate=0.0, alt_mismatch_rate=0.0)
    for index in range(60):
        record = make_record(index, 4, clean)
        caption = record.captions_by("alt_text")[0]
        assert caption.provenance["noise"] == []
        named = set(_pairs(caption.text))
        assert named and named <= _scene_pairs(record)
        assert len(named) == min(2, len(record.meta["scene_graph"]["objects"]))
    mismatched = ShapesWorldConfig(alt_mismatch_rate=1.0, alt_wrong_colour_rate=1.0)
    for index in range(30):
        caption = make_record(index, 4, mismatched).captions_by("alt_text")[0]
        assert caption.provenance["mismatched"] and "wrong_colour" in caption.provenance["noise"]


def test_hard_queries_use_rare_words_and_vague_terms(records):
    for record in records:
        queries = {c.provenance["style"]: c for c in record.captions_by("gt", "query")}
        assert set(queries) == {"rare_synonyms", "vague"}
        target = record.meta["scene_graph"]["objects"][queries["rare_synonyms"].provenance["target"]]
        colour_word, shape_word = queries["rare_synonyms"].text.split()[:2]
        assert colour_word in RARE_COLOUR_WORDS[target["colour"]]
        assert shape_word in RARE_SHAPE_WORDS[target["shape"]]
        assert not set(queries["vague"].text.split()) & (set(COLOURS) | set(SHAPES))


def test_atomic_facts_one_per_attribute_and_relation(records):
    for record in records:
        scene = record.meta["scene_graph"]
        facts = record.meta["atomic_facts"]
        expected = 3 * len(scene["objects"]) + len(scene["relations"]) + 1 + \
            (scene["background"]["texture"] != "plain") + (scene["sign"] is not None)
        assert len(facts) == expected == len(set(facts))
        assert all(f.endswith(".") and f[0].isupper() for f in facts)
        assert {p for f in facts for p in _pairs(f)} == _scene_pairs(record)


def test_qa_answers_agree_with_the_scene(records):
    types = Counter()
    for record in records:
        scene = record.meta["scene_graph"]
        present = _scene_pairs(record)
        answers = Counter()
        for qa in record.meta["qa"]:
            types[qa["type"]] += 1
            if qa["question"] == "How many shapes are there?":
                assert qa["answer"] == str(len(scene["objects"]))
            elif qa["type"] == "count":
                plural = qa["question"].split()[2]
                assert qa["answer"] == str(sum(plural.startswith(o["shape"]) for o in scene["objects"]))
            elif qa["type"] == "presence":
                colour, shape = qa["question"].removesuffix(" in the image?").split()[-2:]
                assert qa["answer"] == ("yes" if (colour, shape) in present else "no")
                answers[qa["answer"]] += 1
            elif qa["type"] == "colour":
                shape = [w for w in re.findall(r"[a-z]+", qa["question"]) if w in SHAPES][0]
                assert (qa["answer"], shape) in present
            elif qa["type"] == "position":
                colour, shape = qa["question"].rstrip("?").split()[-2:]
                obj = next(o for o in scene["objects"] if (o["colour"], o["shape"]) == (colour, shape))
                assert qa["answer"] == obj["region"]
            else:
                assert qa["type"] == "text" and qa["answer"] == scene["sign"]["word"].lower()
        assert answers["yes"] == len(scene["objects"]) and answers["no"] >= 1
    assert set(types) == {"count", "colour", "position", "presence", "text"}
