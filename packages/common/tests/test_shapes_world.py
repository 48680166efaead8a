"""ShapesWorld generator: determinism, pixels agree with the scene graph, relations, splits, config checks."""

from __future__ import annotations

import io
from collections import Counter

import pytest
from PIL import Image

from vlforge.common.errors import VLForgeError
from vlforge.common.shapes.build import generate_records, make_record
from vlforge.common.shapes.config import DEFAULT_SPLIT_FRACTIONS, SPLITS, ShapesWorldConfig
from vlforge.common.shapes.splits import split_of
from vlforge.common.shapes.vocabulary import (
    BACKGROUND_CLASHES,
    COLOUR_RGB,
    COLOUR_SYNONYMS,
    COLOURS,
    SHAPE_SYNONYMS,
    SHAPES,
)


@pytest.fixture(scope="module")
def records():
    return list(generate_records(300, seed=7, workers=1))


def _pixels(record):
    image = Image.open(io.BytesIO(record.image_bytes))
    assert image.format == "PNG" and image.mode == "RGB"
    return image


def test_same_seed_same_bytes_whatever_the_workers():
    serial = list(generate_records(600, seed=11, workers=1))
    parallel = list(generate_records(600, seed=11, workers=2))
    assert [r.to_dict() for r in serial] == [r.to_dict() for r in parallel]
    assert [r.image_id for r in serial] == [f"shapes-s11-{i:08d}" for i in range(600)]
    again = make_record(123, 11, ShapesWorldConfig())
    assert again.to_dict() == serial[123].to_dict()


def test_different_seed_different_output():
    a = list(generate_records(20, seed=1))
    b = list(generate_records(20, seed=2))
    assert sum(x.image_bytes == y.image_bytes for x, y in zip(a, b)) <= 2
    assert [x.captions[0].text for x in a] != [y.captions[0].text for y in b]


def test_scene_graph_agrees_with_pixels(records):
    seen_shapes, seen_counts = Counter(), Counter()
    for record in records:
        scene = record.meta["scene_graph"]
        image = _pixels(record)
        assert image.size == (scene["image_size"],) * 2 == (record.width, record.height)
        assert 1 <= len(scene["objects"]) <= 4
        seen_counts[len(scene["objects"])] += 1
        for obj in scene["objects"]:
            seen_shapes[obj["shape"]] += 1
            assert image.getpixel((obj["x"], obj["y"])) == COLOUR_RGB[obj["colour"]], (record.image_id, obj)
            assert obj["colour"] not in BACKGROUND_CLASHES[scene["background"]["colour"]]
            r = obj["radius"]
            inside = range(r, scene["image_size"] - r)
            assert obj["x"] in inside and obj["y"] in inside
        pairs = [(o["colour"], o["shape"]) for o in scene["objects"]]
        assert len(pairs) == len(set(pairs)), "a (colour, shape) pair names one object"
        if scene["sign"] is not None:
            x0, y0, x1, y1 = scene["sign"]["box"]
            assert image.getpixel((x0, y0)) == (20, 20, 20)  # the sign's dark border
    assert set(seen_shapes) == set(SHAPES) and set(seen_counts) == {1, 2, 3, 4}


def test_pixels_agree_at_the_smallest_and_largest_image_size():
    for size in (32, 448):
        config = ShapesWorldConfig(image_size=size)
        for index in range(15):
            record = make_record(index, 3, config)
            image = _pixels(record)
            assert image.size == (size, size)
            for obj in record.meta["scene_graph"]["objects"]:
                assert image.getpixel((obj["x"], obj["y"])) == COLOUR_RGB[obj["colour"]]


def test_small_objects_are_at_least_14_pixels_across_at_64():
    config = ShapesWorldConfig()
    assert 2 * config.pixel_radius("small") >= 14
    assert config.pixel_radius("large") > config.pixel_radius("small")


def test_relations_follow_the_centres_with_a_margin(records):
    margin = ShapesWorldConfig().relation_margin * 64
    relation_count = 0
    for record in records:
        scene = record.meta["scene_graph"]
        objects = scene["objects"]
        said = {(r["subject"], r["object"], r["relation"]) for r in scene["relations"]}
        for i, a in enumerate(objects):
            for j in range(i + 1, len(objects)):
                b = objects[j]
                expected = set()
                if b["x"] - a["x"] > margin:
                    expected.add("left of")
                if a["x"] - b["x"] > margin:
                    expected.add("right of")
                if b["y"] - a["y"] > margin:
                    expected.add("above")
                if a["y"] - b["y"] > margin:
                    expected.add("below")
                assert {rel for s, o, rel in said if (s, o) == (i, j)} == expected, (record.image_id, i, j)
                relation_count += len(expected)
        assert all(s < o for s, o, _ in said)
    assert relation_count > 300


def test_regions_follow_the_centres(records):
    for record in records:
        for obj in record.meta["scene_graph"]["objects"]:
            column = ("left", "centre", "right")[obj["x"] * 3 // 64]
            row = ("top", "middle", "bottom")[obj["y"] * 3 // 64]
            expected = column if row == "middle" else row if column == "centre" else f"{row} {column}"
            assert obj["region"] == expected, (record.image_id, obj)


def test_split_is_a_function_of_seed_and_index_with_the_given_fractions(records):
    assert all(r.split == split_of(7, i, DEFAULT_SPLIT_FRACTIONS) for i, r in enumerate(records))
    n = 20000
    counts = Counter(split_of(0, i, DEFAULT_SPLIT_FRACTIONS) for i in range(n))
    for name in SPLITS:
        assert abs(counts[name] / n - DEFAULT_SPLIT_FRACTIONS[name]) < 0.01, (name, counts)
    custom = Counter(split_of(0, i, {"pool": 0.5, "test": 0.5}) for i in range(2000))
    assert set(custom) == {"pool", "test"} and abs(custom["pool"] - 1000) < 100


@pytest.mark.parametrize("knobs", [{"image_size": 31}, {"image_size": 449}, {"max_objects": 5},
                                   {"min_objects": 3, "max_objects": 2}, {"shapes": ("circle", "blob")},
                                   {"alt_mismatch_rate": 1.5}, {"split_fractions": {"pool": 0.5}},
                                   {"split_fractions": {"pool": 0.5, "train": 0.5}},
                                   {"small_diameter": 0.5, "large_diameter": 0.4}])
def test_bad_knobs_are_a_one_line_error(knobs):
    with pytest.raises(VLForgeError) as err:
        ShapesWorldConfig.from_knobs(**knobs)
    assert "\n" not in str(err.value)


def test_unknown_knob_is_named():
    with pytest.raises(VLForgeError, match="colors"):
        ShapesWorldConfig.from_knobs(colors=("red",))


def test_vocabulary_knobs_restrict_the_world():
    config = ShapesWorldConfig(shapes=("circle", "square"), colours=("red", "blue", "green", "yellow"),
                               max_objects=2)
    for index in range(40):
        scene = make_record(index, 5, config).meta["scene_graph"]
        assert len(scene["objects"]) <= 2
        assert {o["shape"] for o in scene["objects"]} <= {"circle", "square"}
        assert {o["colour"] for o in scene["objects"]} <= {"red", "blue", "green", "yellow"}


def test_synonym_tables_cover_the_vocabulary_canonical_word_first():
    assert tuple(SHAPE_SYNONYMS) == SHAPES and tuple(COLOUR_SYNONYMS) == COLOURS
    for canonical, words in {**SHAPE_SYNONYMS, **COLOUR_SYNONYMS}.items():
        assert words[0] == canonical and len(set(words)) == len(words)
    every_word = [w for words in SHAPE_SYNONYMS.values() for w in words]
    assert len(every_word) == len(set(every_word)), "a word names one shape only"
