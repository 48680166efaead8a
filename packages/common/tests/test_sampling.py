"""Caption mixtures: weights, per-caption slots and 1/k epochs, sentence sampling and shearing at load time."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from vlforge.common.errors import VLForgeError
from vlforge.common.records import Caption, ImageRecord
from vlforge.common.sampling import CaptionChoice, CaptionSampler, negatives
from vlforge.common.text import shear


def _record(captions: list[Caption]) -> ImageRecord:
    return ImageRecord(image_id="img-1", split="pool", width=32, height=32, captions=captions)


RECORD = _record([
    Caption("red circle stock photo", "alt_text", "free"),
    Caption("A small red circle above a blue square.", "gt", "short"),
    Caption("A red circle. It is small. A blue square is below it. The background is grey.", "gt", "dense"),
    Caption("A small blue circle above a red square.", "gt", "negative",
            provenance={"perturbation": "attribute_swap"}),
    Caption("A red circle floats over a blue box in the middle of a picture", "llava", "descriptive"),
])


def test_weighted_mixture_follows_weights():
    sampler = CaptionSampler([{"source": "alt_text", "weight": 1.0}, {"source": "gt", "kind": "short", "weight": 3.0}])
    rng = random.Random(0)
    drawn = Counter(sampler.text_for(RECORD, rng) for _ in range(4000))
    assert set(drawn) == {"red circle stock photo", "A small red circle above a blue square."}
    assert drawn["A small red circle above a blue square."] / 4000 == pytest.approx(0.75, abs=0.03)
    assert sampler.pairs_per_image == 1 and sampler.epoch_scale == 1.0


def test_weighted_mixture_renormalises_over_present_choices_and_skips_records_without_captions():
    sampler = CaptionSampler([CaptionChoice(source="alt_text", weight=0.1), CaptionChoice(source="missing")])
    assert all(sampler.text_for(RECORD, random.Random(i)) == "red circle stock photo" for i in range(20))
    assert CaptionSampler([CaptionChoice(source="missing")]).text_for(RECORD, random.Random(0)) is None


def test_any_kind_never_draws_negatives():
    sampler = CaptionSampler([CaptionChoice(source="gt")])
    drawn = {sampler.text_for(RECORD, random.Random(i)) for i in range(200)}
    assert "A small blue circle above a red square." not in drawn and len(drawn) == 2


def test_per_caption_slots_and_epoch_scale():
    sampler = CaptionSampler([{"source": "alt_text"}, {"source": "gt", "kind": "short"}, {"source": "llava"},
                              {"source": "absent"}], mode="per_caption")
    assert sampler.pairs_per_image == 4 and sampler.epoch_scale == pytest.approx(0.25)
    rng = random.Random(0)
    assert sampler.text_for(RECORD, rng, slot=0) == "red circle stock photo"
    assert sampler.text_for(RECORD, rng, slot=1) == "A small red circle above a blue square."
    assert sampler.text_for(RECORD, rng, slot=2).startswith("A red circle floats")
    assert sampler.text_for(RECORD, rng, slot=3) in {c.text for c in RECORD.captions if c.kind != "negative"}


def test_sentence_sampling_draws_one_to_k_sentences_in_order():
    sampler = CaptionSampler([{"source": "gt", "kind": "dense", "max_sentences": 2}])
    sentences = ["A red circle.", "It is small.", "A blue square is below it.", "The background is grey."]
    counts = Counter()
    for i in range(300):
        text = sampler.text_for(RECORD, random.Random(i))
        picked = [s for s in sentences if s in text]
        assert 1 <= len(picked) <= 2 and " ".join(picked) == text
        counts[len(picked)] += 1
    assert counts[1] > 50 and counts[2] > 50


def test_shearing_at_load_time():
    sampler = CaptionSampler([{"source": "llava", "shear_tokens": 5}])
    text = sampler.text_for(RECORD, random.Random(0))
    assert text == shear("A red circle floats over a blue box in the middle of a picture", 5)
    assert text == "A red circle floats over"


def test_negatives_are_distinct_and_bounded():
    assert negatives(RECORD, random.Random(0), 3) == ["A small blue circle above a red square."]
    assert negatives(RECORD, random.Random(0), 0) == []


@pytest.mark.parametrize("bad, match", [
    ({"kind": "longest"}, "longest"), ({"weight": 0.0}, "weight"), ({"max_sentences": 0}, "max_sentences"),
    ({"sources": "gt"}, "unknown keys"),
])
def test_bad_choices_are_one_line_errors(bad, match):
    with pytest.raises(VLForgeError, match=match):
        CaptionSampler([bad])


def test_bad_mode_and_empty_mixture():
    with pytest.raises(VLForgeError, match="mode"):
        CaptionSampler([{"source": "gt"}], mode="round_robin")
    with pytest.raises(VLForgeError, match="at least one"):
        CaptionSampler([])


def test_empty_generated_captions_never_train():
    import random

    from vlforge.common.records import Caption, ImageRecord
    from vlforge.common.sampling import CaptionSampler

    record = ImageRecord("a", "pool", 8, 8, captions=[Caption("", "capA", "short"), Caption("  ", "capA", "short"),
                                                      Caption("a red circle", "alt_text", "free")])
    sampler = CaptionSampler([{"source": "capA"}, {"source": "alt_text"}], mode="per_caption")
    rng = random.Random(0)
    # slot 0 asks for capA, whose captions are all empty: the draw falls back to the alt-text
    assert {sampler.text_for(record, rng, slot=0) for _ in range(20)} == {"a red circle"}
    assert CaptionSampler([{"source": "capA"}]).text_for(record, rng) is None
