"""Rule-based decomposition, the ShapesWorld fact reader, and the decomposition measurement."""

import json

import pytest

from vlforge.common.shapes.build import build_shapes_store, make_record
from vlforge.common.shapes.config import ShapesWorldConfig
from vlforge.common.text import split_sentences
from vlforge.critic.decompose import RuleBasedDecomposer, noun_phrases, resolve_pronouns
from vlforge.critic.decompose_eval import main, measure_decomposition, pronominalise
from vlforge.critic.shapes_facts import caption_facts, relation_fact, scene_facts, sentence_facts


def test_pronouns_resolve_to_the_last_noun_phrase_made_definite():
    decompose = RuleBasedDecomposer()
    assert decompose("There is a large red circle in the top left. It is above the blue star.") == [
        "There is a large red circle in the top left.", "The large red circle is above the blue star."]
    assert decompose("A cat is asleep. Its tail is long.") == ["A cat is asleep.", "The cat's tail is long."]
    # the last noun phrase wins even when a person would pick another: the rule's known limit
    assert decompose("A dog sits on a mat. It sleeps.") == ["A dog sits on a mat.", "The mat sleeps."]
    assert decompose("It is raining. The sky is grey.") == ["It is raining.", "The sky is grey."]
    assert decompose("The sign is red; it reads Sale.") == ["The sign is red; the sign reads Sale."]
    assert decompose("") == [] and decompose("   ") == []


def test_pysbd_splitter_keeps_abbreviations_together():
    caption = "A sign reads St. Francis of Assisi. It is red."
    assert RuleBasedDecomposer(splitter="pysbd")(caption) == ["A sign reads St. Francis of Assisi.",
                                                              "The sign is red."]
    assert len(RuleBasedDecomposer()(caption)) == 3  # the regex ends a sentence at "St."


def test_noun_phrases_skip_positions_and_stop_at_prepositions():
    text = 'There is a large red circle in the top left and a sign that reads "Sale".'
    assert [p for _, _, p in noun_phrases(text)] == ["a large red circle", "a sign"]
    assert resolve_pronouns(["A blue star is at the top.", "It is small."]) == [
        "A blue star is at the top.", "The blue star is small."]


def test_fact_reader_inverts_the_atomic_facts_and_reads_dense_captions():
    config = ShapesWorldConfig()
    for index in range(150):
        record = make_record(index, 3, config)
        gold = scene_facts(record.meta["scene_graph"])
        assert caption_facts(record.meta["atomic_facts"]) == gold
        dense = record.captions_by(source="gt", kind="dense")[0].text
        assert caption_facts(split_sentences(dense)) == gold


def test_sentence_facts_examples():
    assert sentence_facts("The red circle is to the left of and above the blue star.") == {
        ("exists", "red", "circle"), ("exists", "blue", "star"),
        relation_fact(("red", "circle"), "left of", ("blue", "star")),
        relation_fact(("red", "circle"), "above", ("blue", "star"))}
    assert relation_fact(("red", "circle"), "left of", ("blue", "star")) == \
        relation_fact(("blue", "star"), "right of", ("red", "circle"))
    assert sentence_facts("It is above the blue star.") == {("exists", "blue", "star")}
    assert sentence_facts('A sign at the top reads "Taxi".') == {("sign", "Taxi")}
    assert sentence_facts("A striped grey background holds two shapes.") == {("background", "grey"),
                                                                             ("texture", "striped")}
    assert sentence_facts("In the bottom right, there is a small white hexagon.") == {
        ("exists", "white", "hexagon"), ("size", "white", "hexagon", "small"),
        ("region", "white", "hexagon", "bottom right")}


def test_pronominalise_replaces_only_subjects_named_just_before():
    caption = "There is a small blue star at the top. The blue star is above the red circle. The red circle is big."
    text, changed = pronominalise(caption)
    assert text == "There is a small blue star at the top. It is above the red circle. It is big."
    assert changed == 2
    assert pronominalise("There is a red circle. The blue star is above it.") == (
        "There is a red circle. The blue star is above it.", 0)


def test_measurement_counts_and_json(tmp_path):
    store = tmp_path / "shapes"
    build_shapes_store(store, num_images=400, seed=1, image_size=32, workers=1)
    output = tmp_path / "out" / "decomposition.json"
    assert main(["--store", str(store), "--split", "pool", "--limit", "40", "--output", str(output)]) == 0
    result = json.loads(output.read_text())
    assert result["images"] == 40
    dense, pronouns = result["results"]["dense"], result["results"]["dense_pronouns"]
    for name in ("sentence_split", "rule_based"):
        assert dense[name]["precision"] == dense[name]["recall"] == 100.0  # dense captions are self-contained
    assert pronouns["pronouns"] > 0
    split_only, rule = pronouns["sentence_split"], pronouns["rule_based"]
    assert split_only["recall"] < 100.0 and rule["recall"] > split_only["recall"]
    assert rule["recall"] == pytest.approx(100 * rule["true_facts"] / rule["scene_facts"])
    assert rule["precision"] == pytest.approx(100 * rule["true_facts"] / rule["recovered_facts"])


def test_measurement_mistakes_are_one_line(tmp_path, capsys):
    from vlforge.common.store import CaptionStore

    empty = tmp_path / "empty"
    CaptionStore.create(empty).close()
    assert main(["--store", str(empty), "--split", "test"]) == 2
    assert capsys.readouterr().err.strip().endswith("split 'test' has no records")
    with pytest.raises(Exception, match="no gt dense caption"):
        from vlforge.common.records import ImageRecord
        measure_decomposition([ImageRecord("x", "test", 1, 1, [], image_bytes=b"", meta={})])


def test_the_output_never_overwrites_the_store(tmp_path, capsys):
    """--output is written atomically and never onto an input: pointed at the store's own data.mdb, it is refused
    in one line and the store still opens and verifies."""
    from vlforge.common.store import CaptionStore
    from vlforge.common.store.verify import verify_store

    store = tmp_path / "shapes"
    build_shapes_store(store, num_images=20, seed=1, image_size=32, workers=1)
    capsys.readouterr()
    assert main(["--store", str(store), "--split", "pool", "--output", str(store / "data.mdb")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "would overwrite the input" in err[0]
    with CaptionStore(store) as reader:
        assert verify_store(reader).ok
