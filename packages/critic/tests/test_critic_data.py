"""ShapesWorld critic data (#12 item 2): critiques in Fig. 14's structure judged from the scene graph, false
sentences of each error type, LLaVA conversation JSON out and back, and the drop-inconsistent baseline."""

import json
import os
import random
import subprocess
import sys
from collections import Counter

import pytest
from PIL import Image

from vlforge.common.errors import VLForgeError
from vlforge.common.lm.collate import SFTCollator
from vlforge.common.presets import build_preset
from vlforge.common.progress import is_status_line
from vlforge.common.shapes.build import build_shapes_store, make_record
from vlforge.common.shapes.config import ShapesWorldConfig
from vlforge.common.shapes.grammar import region_phrase
from vlforge.common.shapes.vocabulary import INVERSE_RELATION
from vlforge.common.text import split_sentences
from vlforge.critic.critique import describe, judge, write_critique
from vlforge.critic.llava_format import read_llava_critic
from vlforge.critic.make_data import main
from vlforge.critic.prompts import critic_prompt
from vlforge.critic.rewrite import drop_inconsistent
from vlforge.critic.shapes_critic_data import ERROR_TYPES, critic_examples, false_sentence, sentence_template
from vlforge.critic.shapes_facts import scene_facts, sentence_facts
from vlforge.critic.verdicts import parse_verdict

CONFIG = ShapesWorldConfig()
RECORDS = [make_record(i, 0, CONFIG) for i in range(120)]


def test_true_sentences_are_consistent_false_ones_inconsistent_with_fig14_structure():
    seen = Counter()
    for record in RECORDS:
        examples = critic_examples(record, random.Random(record.image_id))
        falses = [e for e in examples if e.error_type != "none"]
        assert sum(e.error_type == "none" for e in examples) == len(falses)  # balanced
        for example in examples:
            seen[example.error_type] += 1
            assert example.consistent is (example.error_type == "none"), example
            lines = example.critique.splitlines()
            assert lines[0] == "Key points to check:" and "Checking each point against the image:" in lines
            assert lines[-2].startswith("Summary: ") and parse_verdict(example.critique) is example.consistent
            points = lines[1:lines.index("Checking each point against the image:")]
            assert points and all(p.startswith(f"{i}. ") for i, p in enumerate(points, start=1))
    assert set(seen) == {"none", *ERROR_TYPES}


def _object(scene, colour, shape):
    return [o for o in scene["objects"] if (o["colour"], o["shape"]) == (colour, shape)]


def test_false_sentences_are_false_by_the_scene_graph_directly():
    rng = random.Random(0)
    for record in RECORDS:
        scene = record.meta["scene_graph"]
        for error_type in ERROR_TYPES:
            sentence = false_sentence(rng, scene, error_type)
            if sentence is None:
                assert error_type == "relation" and not scene["relations"]
                continue
            words = sentence.rstrip(".").split()
            if error_type in ("colour", "shape"):  # "There is a <size> <colour> <shape> <where>."
                size, colour, shape, where = words[3], words[4], words[5], " ".join(words[6:])
                assert not _object(scene, colour, shape)
                keep = "shape" if error_type == "colour" else "colour"  # the attribute that stays true
                assert any(o[keep] == {"shape": shape, "colour": colour}[keep] and o["size"] == size
                           and region_phrase(o["region"]) == where for o in scene["objects"])
            elif error_type == "absent_object":
                assert not _object(scene, words[3], words[4])
            elif error_type == "count":
                assert sentence != f"There are {len(scene['objects'])} shapes."
                assert ("one", "two", "three", "four", "five").index(words[2]) + 1 != len(scene["objects"])
            elif error_type == "position":  # "The <colour> <shape> is <where>."
                (obj,) = _object(scene, words[1], words[2])
                assert sentence != f"The {words[1]} {words[2]} is {region_phrase(obj['region'])}."
            elif error_type == "relation":
                facts = [f for f in sentence_facts(sentence) if f[0] == "relation"]
                assert len(facts) == 1
                objects = scene["objects"]
                true = {((objects[r["subject"]]["colour"], objects[r["subject"]]["shape"]), r["relation"],
                         (objects[r["object"]]["colour"], objects[r["object"]]["shape"])) for r in scene["relations"]}
                _, a, rel, b = facts[0]
                assert (a, rel, b) not in true and (b, INVERSE_RELATION[rel], a) not in true


def test_describe_first_critique_of_one_scene():
    scene = make_record(14, 0, CONFIG).meta["scene_graph"]  # purple star on the left, blue circle bottom right
    relation = write_critique("The blue circle is to the left of the purple star.", scene, describe_first=True)
    assert relation == ("""The image shows two shapes on a grey background. There is a small purple star on the left. \
There is a small blue circle in the bottom right. The blue circle is to the right of and below the purple star.
Key points to check:
1. Object: a blue circle is present
2. Object: a purple star is present
3. Relation: the blue circle is to the left of the purple star
Checking each point against the image:
1. Object: a blue circle is present: matches the image.
2. Object: a purple star is present: matches the image.
3. Relation: the blue circle is to the left of the purple star: does not match: the blue circle is below the purple \
star and the blue circle is to the right of the purple star.
Summary: the sentence does not match the image: the blue circle is below the purple star and the blue circle is to \
the right of the purple star.
Verdict: inconsistent""", False)
    colour, consistent = write_critique("There is a small red star on the left.", scene, describe_first=True)
    assert not consistent and colour.splitlines()[0] == (
        "The image shows two shapes on a grey background. There is a small purple star on the left. There is a "
        "small blue circle in the bottom right.")  # no relation named, none described; no sign either
    assert "1. Object: a red star is present: does not match: there is no red star in the image." in colour
    sign, consistent = write_critique('There is a sign that reads "Sale".', scene, describe_first=True)
    assert consistent and sign.splitlines()[0].endswith('A sign at the top reads "Sale".')


def test_critique_text_does_not_depend_on_the_hash_seed():
    """Two true relations of one pair are said in one order in every process (a set's order once decided it)."""
    code = ("from vlforge.common.shapes.build import make_record; from vlforge.common.shapes.config import "
            "ShapesWorldConfig; from vlforge.critic.critique import write_critique; print(write_critique("
            "'The blue circle is to the left of the purple star.', make_record(14, 0, ShapesWorldConfig())"
            ".meta['scene_graph'])[0])")
    texts = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={**os.environ, "PYTHONHASHSEED": str(seed)}).stdout for seed in range(4)}
    assert len(texts) == 1 and "below the purple star and the blue circle is to the right" in texts.pop()


def test_describe_first_changes_only_the_critiques_opening_and_the_description_is_true():
    for record in RECORDS:
        scene = record.meta["scene_graph"]
        plain = critic_examples(record, random.Random(record.image_id))
        described = critic_examples(record, random.Random(record.image_id), describe_first=True)
        assert [(e.sentence, e.consistent, e.error_type) for e in plain] == \
            [(e.sentence, e.consistent, e.error_type) for e in described]
        for before, after in zip(plain, described):
            description, *rest = after.critique.splitlines()
            assert description == describe(scene, [f for f, _ in judge(after.sentence, scene)[1]])
            assert rest[0] == "Key points to check:" and parse_verdict(after.critique) is after.consistent
            assert len(rest) == len(before.critique.splitlines())
            stated = set().union(*(sentence_facts(s) for s in split_sentences(description)))
            assert stated <= scene_facts(scene), (description, stated - scene_facts(scene))
            assert {("region", o["colour"], o["shape"], o["region"]) for o in scene["objects"]} <= stated


def test_describe_first_critiques_fit_the_tiny_models_context():
    """The longest describe-first critique of each record, after the short instruction and the image, keeps every
    token within the tiny presets' 512 positions (a cut critique loses its verdict line)."""
    processor = build_preset("llava_tiny")[1]
    collator = SFTCollator(processor, max_length=512)
    image = Image.new("RGB", (64, 64))
    for record in RECORDS:
        examples = critic_examples(record, random.Random(record.image_id), describe_first=True)
        longest = max(examples, key=lambda e: len(e.critique))
        collator([{"image": image, "instruction": critic_prompt(longest.sentence, "short"),
                   "response": longest.critique}])
    assert collator.counts["sequences"] == len(RECORDS) and collator.counts["truncated"] == 0


def test_observe_first_critique_of_one_scene():
    scene = make_record(14, 0, CONFIG).meta["scene_graph"]  # purple star on the left, blue circle bottom right
    colour, consistent = write_critique("There is a small red star on the left.", scene, observe_first=True)
    assert not consistent and colour.splitlines()[4:8] == [
        "Checking each point against the image:",
        "1. Object: a red star is present: the image has a purple star on the left; does not match.",
        "2. Size: the red star is small: as in point 1; does not match.",
        "3. Position: the red star is on the left: as in point 1; does not match."]
    true, consistent = write_critique("The blue circle is in the bottom right.", scene, observe_first=True)
    assert consistent and true.splitlines()[4:6] == [
        "1. Object: a blue circle is present: the image has a blue circle in the bottom right; matches the image.",
        "2. Position: the blue circle is in the bottom right: the blue circle is in the bottom right; matches the "
        "image."]


def test_observe_first_checks_state_what_the_image_shows_then_judge_by_it():
    """Every check's observation is true of the scene graph, comes before the judgement, and the judgement follows
    from comparing the point with the observation (an object point holds exactly when its object is among the
    observed ones); sentences and verdicts are those of the plain critiques."""
    for record in RECORDS:
        scene = record.meta["scene_graph"]
        plain = critic_examples(record, random.Random(record.image_id))
        observed = critic_examples(record, random.Random(record.image_id), observe_first=True)
        assert [(e.sentence, e.consistent) for e in plain] == [(e.sentence, e.consistent) for e in observed]
        for example in observed:
            assert parse_verdict(example.critique) is example.consistent
            lines = example.critique.splitlines()
            checks = lines[lines.index("Checking each point against the image:") + 1:-2]
            assert checks
            for check in checks:
                assert check.endswith(("; matches the image.", "; does not match."))
                point, observation = check.rsplit("; ", 1)[0].split(": ", 1)[1].rsplit(": ", 1)
                holds = check.endswith("matches the image.")
                if point.startswith("Object: "):
                    assert observation.startswith("the image has ")
                    named = point.removeprefix("Object: ").split(" ", 1)[1].removesuffix(" is present")
                    listed = [f"{o['colour']} {o['shape']}" for o in scene["objects"]
                              if f"{o['colour']} {o['shape']} {region_phrase(o['region'])}" in observation]
                    assert (named in listed) is holds, check
                elif observation != "as in point 1" and not observation.startswith("the image has "):
                    stated = set().union(*(sentence_facts(s.strip().capitalize() + ".")
                                           for s in observation.split(" and ")))
                    assert stated <= scene_facts(scene), (check, stated - scene_facts(scene))


def test_unreadable_sentence_gets_no_critique():
    scene = RECORDS[0].meta["scene_graph"]
    assert judge("The mood is calm.", scene) is None and write_critique("It is small.", scene) is None


def test_make_data_writes_llava_json_that_reads_back(tmp_path, capsys, monkeypatch):
    store = tmp_path / "shapes"
    build_shapes_store(store, num_images=200, seed=0, image_size=32, workers=1)
    out = tmp_path / "critic"
    capsys.readouterr()
    monkeypatch.setenv("VLFORGE_PROGRESS_INTERVAL", "0")  # a status line per image, as in a log file
    monkeypatch.delenv("VLFORGE_PROGRESS", raising=False)
    assert main(["--store", str(store), "--split", "pool", "--output_dir", str(out), "--limit", "15"]) == 0
    captured = capsys.readouterr()
    assert "15 images" in captured.out
    status = [line for line in captured.err.splitlines() if is_status_line(line)]
    assert [line.split()[2] for line in status] == [f"{n}/15" for n in range(1, 16)] + ["15/15"]
    assert status[-1].startswith("vlforge-critic make-data: 15/15 images (100.0 %), ") and "ETA" in status[0]
    items = json.loads((out / "critic.json").read_text())
    assert items[0]["conversations"][0]["value"].startswith("<image>\nYou are an excellent visual language")
    rows = read_llava_critic(out / "critic.json")
    summary = json.loads((out / "summary.json").read_text())
    assert len(rows) == len(items) == summary["examples"]
    for row, item in zip(rows, items):
        assert row.critique == item["conversations"][1]["value"]
        assert row.consistent is (row.error_type == "none")
        assert row.sentence in item["conversations"][0]["value"].splitlines()[-1]
        assert Image.open(row.image).size == (32, 32)
    consistent = sum(r.consistent for r in rows)
    assert consistent == len(rows) - consistent


def test_make_data_describe_first_opens_every_critique_with_the_description(tmp_path):
    store = tmp_path / "shapes"
    build_shapes_store(store, num_images=60, seed=0, image_size=32, workers=1)
    out = tmp_path / "critic"
    args = ["--store", str(store), "--split", "pool", "--output_dir", str(out), "--limit", "3"]
    assert main([*args, "--describe_first", "true"]) == 0
    assert json.loads((out / "summary.json").read_text())["describe_first"] is True
    rows = read_llava_critic(out / "critic.json")
    assert rows and all(r.critique.startswith("The image shows ") for r in rows)
    assert all(r.critique.splitlines()[1] == "Key points to check:" for r in rows)
    assert main([*args, "--observe_first", "true"]) == 0
    assert json.loads((out / "summary.json").read_text())["observe_first"] is True
    rows = read_llava_critic(out / "critic.json")
    assert rows and all(r.critique.startswith("Key points to check:") for r in rows)
    for row in rows:
        lines = row.critique.splitlines()
        checks = lines[lines.index("Checking each point against the image:") + 1:-2]
        assert checks and all(c.endswith(("; matches the image.", "; does not match.")) for c in checks)


def test_reader_refuses_escaping_paths_and_malformed_rows(tmp_path):
    good = {"id": "a", "image": "x.png", "conversations": [
        {"from": "human", "value": "<image>\nSentence to be checked: There is a red circle."},
        {"from": "gpt", "value": "Verdict: consistent"}]}
    path = tmp_path / "c.json"
    path.write_text(json.dumps([good]))
    assert read_llava_critic(path)[0].sentence == "There is a red circle."
    path.write_text(json.dumps([{**good, "id": "evil", "image": "../../etc/passwd"}]))
    with pytest.raises(VLForgeError, match="row evil: image path '../../etc/passwd' escapes"):
        read_llava_critic(path)
    path.write_text(json.dumps([{**good, "id": "abs", "image": "/etc/passwd"}]))
    with pytest.raises(VLForgeError, match="row abs: image path '/etc/passwd' must be relative"):
        read_llava_critic(path)
    path.write_text(json.dumps([{"id": "b", "image": "x.png", "conversations": [{"from": "human", "value": "hi"}]}]))
    with pytest.raises(VLForgeError, match="row b is not a critic conversation"):
        read_llava_critic(path)


def test_drop_inconsistent_recovers_the_clean_caption():
    rng = random.Random(1)
    for record in RECORDS[:60]:
        scene = record.meta["scene_graph"]
        clean = split_sentences(record.captions_by(source="gt", kind="dense")[0].text)
        corrupted = list(clean)
        for error_type in ("colour", "position", "absent_object"):
            corrupted.insert(rng.randrange(len(corrupted) + 1), false_sentence(rng, scene, error_type))
        verdicts = [judge(s, scene)[0] if judge(s, scene) else None for s in corrupted]
        assert drop_inconsistent(corrupted, verdicts) == " ".join(clean)


def test_drop_inconsistent_keeps_unscored_sentences():
    assert drop_inconsistent(["A.", "B.", "C."], [True, None, False]) == "A. B."
    assert drop_inconsistent([], []) == ""
    with pytest.raises(VLForgeError, match="2 sentences but 1 verdicts"):
        drop_inconsistent(["A.", "B."], [True])


def test_records_without_a_scene_graph_are_skipped_and_counted(tmp_path, capsys):
    from vlforge.common.records import ImageRecord
    from vlforge.common.store import CaptionStore

    store = tmp_path / "mixed"
    writer = CaptionStore.create(store)
    shapes = make_record(0, 0, CONFIG)
    shapes.split = "critic"
    plain = ImageRecord("web-1", "critic", 32, 32, [], image_bytes=shapes.image_bytes, meta={})
    writer.put_records([shapes, plain])
    writer.close()
    assert main(["--store", str(store), "--split", "critic", "--output_dir", str(tmp_path / "out")]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["skipped"] == [{"image_id": "web-1", "reason": "no scene graph"}]
    assert summary["counts"]["images"] == 1 and "skipped 1" in capsys.readouterr().out
    assert main(["--store", str(store), "--split", "test", "--output_dir", str(tmp_path / "none")]) == 2
    assert "split 'test' has no ShapesWorld records" in capsys.readouterr().err


def test_no_sentence_template_is_false_by_itself():
    """A critic must look at the image: every template of a false sentence is also the template of true ones
    (before the fix, "There is a <size> <colour> <shape> <where>." was always false, and so was "a orange")."""
    true, false = Counter(), Counter()
    for record in RECORDS:
        for example in critic_examples(record, random.Random(record.image_id)):
            (true if example.consistent else false)[sentence_template(example.sentence)] += 1
    only_false = {t: n for t, n in false.items() if t not in true}
    assert not only_false, only_false


def _majority_by_template_accuracy(train, held_out) -> float:
    """A text-only critic: each template's majority verdict on ``train`` (ties and unseen templates: the overall
    majority), scored on ``held_out`` (%)."""
    votes: dict[str, Counter] = {}
    for example in train:
        votes.setdefault(sentence_template(example.sentence), Counter())[example.consistent] += 1
    overall = Counter(example.consistent for example in train).most_common(1)[0][0]

    def guess(template: str) -> bool:
        count = votes.get(template, Counter())
        return overall if count[True] == count[False] else count[True] > count[False]

    return 100 * sum(guess(sentence_template(e.sentence)) is e.consistent for e in held_out) / len(held_out)


def test_a_text_only_critic_scores_half():
    """Each sentence template is as often true as false, in training data and held-out data alike, so a critic
    that reads only the sentence's template gets 50 %."""
    train = [e for r in RECORDS[:80] for e in critic_examples(r, random.Random(f"critic/0/{r.image_id}"))]
    held_out = [e for r in RECORDS[80:] for e in critic_examples(r, random.Random(f"critic-eval/1/{r.image_id}"))]
    for examples in (train, held_out):
        per_template = Counter((sentence_template(e.sentence), e.consistent) for e in examples)
        assert all(n == per_template[(template, not consistent)] for (template, consistent), n in per_template.items())
    assert {e.error_type for e in held_out} == {"none", *ERROR_TYPES}
    assert _majority_by_template_accuracy(train, held_out) == pytest.approx(50.0)
    assert _majority_by_template_accuracy(held_out, held_out) == pytest.approx(50.0)  # even fitted on the test data
    unbalanced = [e for r in RECORDS[:80] for e in critic_examples(r, random.Random(r.image_id), balance=False)]
    assert _majority_by_template_accuracy(unbalanced, unbalanced) > 65  # the same critic without the balance


def test_a_trained_captioners_sentences_are_judged_against_the_scene_graph(tmp_path):
    """The active-learning rows (make-data --captioner_sources): each sentence of a captioner's caption is an example
    judged by the scene graph, whatever the caption says; other sources' captions add nothing."""
    from vlforge.common.records import Caption
    from vlforge.common.store import CaptionStore
    from vlforge.critic.decompose import RuleBasedDecomposer

    store = tmp_path / "shapes"
    build_shapes_store(store, num_images=60, seed=0, image_size=32, workers=1)
    with CaptionStore(store, readonly=False) as s:
        ids = s.ids("pool")[:3]
        records = {i: s.get(i) for i in ids}
        own = {}
        for i in ids:
            obj = records[i].meta["scene_graph"]["objects"][0]
            wrong = next(c for c in ("red", "green", "blue", "yellow") if c != obj["colour"])
            own[i] = [Caption(f"There is a {obj['colour']} {obj['shape']}. It is {obj['size']}. There is a {wrong} "
                              f"{obj['shape']} {region_phrase(obj['region'])}.", "my_captioner", "short")]
        s.append_captions(own)
    out = tmp_path / "critic"
    args = ["--store", str(store), "--split", "pool", "--output_dir", str(out), "--limit", "3", "--balance", "false"]
    assert main(args) == 0
    plain = read_llava_critic(out / "critic.json")
    assert main([*args, "--captioner_sources", "[my_captioner]"]) == 0
    mined = [r for r in read_llava_critic(out / "critic.json") if r.error_type == "captioner"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["captioner_sources"] == ["my_captioner"] and len(mined) == summary["examples"] - len(plain)
    with CaptionStore(store) as s:
        expected = [(sentence, judge(sentence, s.get(i).meta["scene_graph"])[0]) for i in ids
                    for sentence in RuleBasedDecomposer()(own[i][0].text)]
    assert sorted((r.sentence, r.consistent) for r in mined) == sorted(expected)
    assert Counter(consistent for _, consistent in expected) == Counter({True: 6, False: 3})
    # "It is small." resolved to its object, judged true
    assert any(r.sentence.startswith("The ") and r.consistent for r in mined)
