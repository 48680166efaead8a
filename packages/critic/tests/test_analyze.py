"""`vlforge-critic analyze`: before / after critic-rewrite against hand-computed CHAIR, coverage and verdict counts."""

import json

import pytest

from vlforge.common.errors import VLForgeError
from vlforge.common.records import Caption
from vlforge.common.shapes.vocabulary import SHAPES
from vlforge.common.store import CaptionStore
from vlforge.critic.analyze import main


def test_analyze_counts_chair_coverage_and_verdicts_by_hand(tmp_path, store_maker):
    store = store_maker(tmp_path / "shapes", {"test": 2})
    with CaptionStore(store, readonly=False) as s:
        ids = s.ids("test")
        captions, coverage = {}, []
        for image_id in ids:
            shapes = sorted({o["shape"] for o in s.get(image_id).meta["scene_graph"]["objects"]})
            absent = next(x for x in SHAPES if x not in shapes)
            before = f"There is a {shapes[0]}. There is a {absent}."
            after = Caption(f"There is a {shapes[0]}.", "weak+critic", "dense", provenance={"sentences_cut": 1},
                            scores={"critic_sentences": [{"verdict": "consistent"}, {"verdict": "inconsistent"}]})
            captions[image_id] = [Caption(before, "weak", "dense"), after]
            coverage.append(100.0 / len(shapes))  # one of the scene's shapes named
        s.append_captions(captions)
    assert main(["--store", str(store), "--source", "weak", "--output", str(tmp_path / "a.json")]) == 0
    report = json.loads((tmp_path / "a.json").read_text())
    assert report["before"]["chair_i"] == pytest.approx(50.0) and report["before"]["chair_s"] == pytest.approx(100.0)
    assert report["after"]["chair_i"] == 0.0 and report["after"]["chair_s"] == 0.0
    assert report["after"]["mean_words"] == 4.0 and report["before"]["mean_words"] == 8.0
    assert report["sentences"] == {"consistent": 2, "inconsistent": 2} and report["sentences_cut"] == 2
    assert report["before"]["images"] == 2
    expected = sum(coverage) / 2
    assert report["before"]["object_coverage"] == pytest.approx(expected) == report["after"]["object_coverage"]
    with pytest.raises(VLForgeError, match="run `vlforge-critic predict` first"):
        main(["--store", str(store), "--source", "gt"])
