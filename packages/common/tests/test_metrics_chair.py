"""CHAIR_i / CHAIR_s (Rohrbach et al. 2018) against a direct count on random captions, and on ShapesWorld records."""

import random

import pytest

from vlforge.common.errors import VLForgeError
from vlforge.common.metrics.chair import chair, scene_objects
from vlforge.common.shapes.vocabulary import SHAPE_SYNONYMS, SHAPES


def test_hand_example():
    result = chair(["A red circle and two Squares.", "Only discs here: a disc, a star!", "Nothing at all."],
                   [["circle", "square"], ["circle"], ["triangle"]])
    assert result.mentions == [["circle", "square"], ["circle", "circle", "star"], []]
    assert result.hallucinations == [[], ["star"], []]
    assert result.hallucinated == [False, True, False]
    assert result.chair_i == pytest.approx(100 / 5) and result.chair_s == pytest.approx(100 / 3)


def test_matches_direct_count_on_random_captions():
    rng = random.Random(0)
    fillers = ["a", "the", "red", "big", "left", "of", "on", "background", "stock", "photo", "starry", "boxy"]
    captions, objects, expected_mentions, expected_bad = [], [], 0, 0
    flags = []
    for _ in range(300):
        present = rng.sample(SHAPES, rng.randint(1, 3))
        words, bad = [], 0
        for _ in range(rng.randint(3, 12)):
            if rng.random() < 0.4:
                shape = rng.choice(SHAPES)
                words.append(rng.choice(SHAPE_SYNONYMS[shape]).upper() if rng.random() < 0.1
                             else rng.choice(SHAPE_SYNONYMS[shape]))
                expected_mentions += 1
                bad += shape not in present
            else:
                words.append(rng.choice(fillers))
        captions.append(" ".join(words) + ".")
        objects.append(present)
        expected_bad += bad
        flags.append(bad > 0)
    result = chair(captions, objects)
    assert result.num_mentions == expected_mentions and result.num_hallucinated_mentions == expected_bad
    assert result.hallucinated == flags
    assert result.chair_i == pytest.approx(100 * expected_bad / expected_mentions)
    assert result.chair_s == pytest.approx(100 * sum(flags) / len(flags))
    assert 0 < result.chair_s < 100


def test_ground_truth_captions_of_shapesworld_do_not_hallucinate():
    from vlforge.common.shapes.build import generate_records

    records = list(generate_records(30, seed=1, workers=1))
    dense = [r.captions_by(source="gt", kind="dense")[0].text for r in records]
    objects = [scene_objects(r.meta["scene_graph"]) for r in records]
    result = chair(dense, objects)
    assert result.num_mentions >= 30 and result.chair_i == 0.0 and result.chair_s == 0.0
    replaced = [r.captions_by(kind="negative") for r in records]
    swapped = [c.text for cs in replaced for c in cs if "replace" in str(c.provenance) + str(c.scores)]
    owners = [scene_objects(r.meta["scene_graph"]) for r, cs in zip(records, replaced) for c in cs
              if "replace" in str(c.provenance) + str(c.scores)]
    assert swapped, "ShapesWorld should provide object-replacement negatives"
    assert chair(swapped, owners).chair_s > 50  # a replaced object names a shape absent from the image


def test_errors():
    with pytest.raises(VLForgeError, match="2 captions but 1 object lists"):
        chair(["a", "b"], [["circle"]])
    with pytest.raises(VLForgeError, match="object 'unicorn' of caption 0 is not in the object vocabulary"):
        chair(["a circle"], [["unicorn"]])


def test_coco_two_word_names_plurals_and_qualifiers_hand_checked():
    from vlforge.common.metrics.chair import COCO_OBJECTS

    captions = ["A teddy bear lies on a bed.",                      # teddy bear + bed; no bear
                "A man eats a hot dog next to two puppies.",        # person, hot dog, dog (plural of puppy)
                "A baby elephant walks past a traffic light.",      # elephant (not person), traffic light
                "Three people ride bikes; knives and wine glasses on the dining table.",
                "A cat sleeps on a sofa."]
    objects = [["teddy bear", "bed"], ["person", "hot dog"], ["elephant"], ["person", "bicycle", "knife",
                                                                             "dining table"], ["cat", "couch"]]
    result = chair(captions, objects, synonyms=COCO_OBJECTS)
    assert result.mentions == [["teddy bear", "bed"], ["person", "hot dog", "dog"], ["elephant", "traffic light"],
                               ["person", "bicycle", "knife", "wine glass", "dining table"], ["cat", "couch"]]
    assert result.hallucinations == [[], ["dog"], ["traffic light"], ["wine glass"], []]
    assert result.hallucinated == [False, True, True, True, False]
    assert result.num_mentions == 2 + 3 + 2 + 5 + 2 and result.num_hallucinated_mentions == 3
    assert result.chair_i == pytest.approx(100 * 3 / 14) and result.chair_s == pytest.approx(100 * 3 / 5)


def test_coco_table_covers_the_80_classes_with_plurals():
    from vlforge.common.metrics.chair import COCO_OBJECTS
    from vlforge.common.metrics.coco_objects import plural

    assert len(COCO_OBJECTS) == 80 and "teddy bear" in COCO_OBJECTS and "hair drier" in COCO_OBJECTS
    words = [w for ws in COCO_OBJECTS.values() for w in ws]
    assert len(words) == len(set(words)), "a word names two classes"
    assert [plural(w) for w in ("puppy", "bus", "knife", "person", "sheep", "toy", "giraffe", "sandwich")] == [
        "puppies", "buses", "knives", "people", "sheep", "toys", "giraffes", "sandwiches"]
    assert {"teddy bears", "hot dogs", "wine glasses", "people", "mice"} <= set(words)


def test_one_code_path_for_shapesworld_and_coco_tables():
    from vlforge.common.metrics.chair import COCO_OBJECTS, object_mentions

    assert object_mentions("a disc, two crimson discs and a honeycomb") == ["circle", "circle", "hexagon"]
    assert object_mentions("two discs and a dog", COCO_OBJECTS) == ["dog"]
    with pytest.raises(VLForgeError, match="'circle' of caption 0"):
        chair(["a dog"], [["circle"]], synonyms=COCO_OBJECTS)
