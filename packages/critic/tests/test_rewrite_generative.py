"""The generative rewrite of critic-rewrite (#12 item 5): the shipped Fig. 15 prompt, what the rewrite is told per
sentence, the scene-graph critic, the (corrupted caption + critiques -> clean caption) training data, and a tiny
rewriter fitted from the shipped config and used by `vlforge-critic predict` beside the drop-inconsistent baseline."""

import json
import random
import re

import pytest

from vlforge.common.console import console
from vlforge.common.errors import VLForgeError
from vlforge.common.records import Caption, ImageRecord
from vlforge.common.shapes.vocabulary import COLOURS, SHAPES
from vlforge.common.store import CaptionStore
from vlforge.critic.analyze import main as analyze
from vlforge.critic.cli import TOOLS
from vlforge.critic.critique import write_critique
from vlforge.critic.data import RewriteSFTDataset, gt_dense_caption
from vlforge.critic.decompose import RuleBasedDecomposer
from vlforge.critic.rewrite import drop_inconsistent
from vlforge.critic.rewrite_generative import (
    GenerativeRewriter,
    critique_summary,
    critiques_text,
    rewrite_prompt,
    rewrite_prompts,
)
from vlforge.critic.scene_graph_critic import scene_graph_scores
from vlforge.critic.shapes_rewrite_data import corrupt_words

SOURCE = "weak"


@pytest.fixture(scope="module")
def store(tmp_path_factory, store_maker):
    path = store_maker(tmp_path_factory.mktemp("rewrite") / "shapes", {"pool": 8, "val": 2, "test": 4}, size=32)
    with CaptionStore(path, readonly=False) as s:
        ids = s.ids("test")
        records = {i: s.get(i) for i in ids}
        weak = {i: [Caption(corrupt_words(gt_dense_caption(records[i]), random.Random(i), 0.3), SOURCE, "dense")]
                for i in ids[:3]}
        weak[ids[3]] = [Caption(gt_dense_caption(records[ids[3]]), SOURCE, "dense")]  # nothing to correct
        s.append_captions(weak)
    return path


def test_shipped_prompts_load_and_format():
    assert set(rewrite_prompts()) == {"fig15", "short", "sentence"}
    fig15 = rewrite_prompt("A red circle.", "1. There is a red circle. Critic: consistent", "fig15")
    assert fig15.startswith("You are an excellent visual language assistant. You will receive an image and its "
                            "original text description. The description contains some inconsistencies")
    assert "ensuring that the new description accurately reflects the image content." in fig15
    assert "Original Image Description: A red circle.\n\nAtomic Sentence and Critic: 1. There is a red circle." in fig15
    assert rewrite_prompt("A {x}.", "C", "short") == "Rewrite: A {x}. Critic: C"
    with pytest.raises(VLForgeError, match="'long' is not one of fig15, short, sentence"):
        rewrite_prompt("x", "y", "long")


def test_the_rewrite_is_told_each_sentences_summary_or_its_verdict():
    critique = ("Key points to check:\n1. Object: a blue star is present\nChecking each point against the image:\n"
                "1. ...: does not match.\nSummary: there is no blue star; the image has a yellow star.\n"
                "Verdict: inconsistent")
    assert critique_summary(critique, False) == "there is no blue star; the image has a yellow star."
    assert critique_summary("The star is yellow, not blue.\n**Verdict:** inconsistent", False) == \
        "The star is yellow, not blue."
    assert critique_summary(None, False) == "inconsistent" and critique_summary("", None) == "unscored"
    sentences = ["There is a red circle.", "There is a blue star.", "The sign reads hi."]
    verdicts, critiques = [True, False, None], [None, critique, None]
    assert critiques_text(sentences, verdicts, critiques) == \
        "1. There is a blue star. Critic: there is no blue star; the image has a yellow star."
    assert critiques_text(sentences, verdicts, critiques, "all") == (
        "1. There is a red circle. Critic: consistent 2. There is a blue star. Critic: there is no blue star; the "
        "image has a yellow star. 3. The sign reads hi. Critic: unscored")
    with pytest.raises(VLForgeError, match="critiqued must be one of inconsistent, all"):
        critiques_text([], [], [], "some")


def test_corrupt_words_swaps_colour_and_shape_words_within_their_kind():
    text = "There is a large red circle in the top left. The red circle is left of the blue star. A redundant word."
    assert corrupt_words(text, random.Random(0), 1e-9) == text
    swapped = corrupt_words(text, random.Random(0), 1.0)
    words, new = text.split(), swapped.split()
    assert len(words) == len(new)
    for old, now in zip(words, new, strict=True):
        bare_old, bare_now = old.strip("."), now.strip(".")
        for kind in (COLOURS, SHAPES):
            if bare_old in kind:
                assert bare_now in kind and bare_now != bare_old
        if bare_old not in COLOURS + SHAPES:
            assert now == old  # "redundant" holds "red" but is not a colour word
    # a direct implementation of the shapes-only swap (the experiment's `corrupted` source): same draws, same text
    rng_a, rng_b = random.Random(5), random.Random(5)
    direct = re.sub(rf"\b({'|'.join(SHAPES)})\b",
                    lambda m: rng_b.choice([s for s in SHAPES if s != m.group(1)]) if rng_b.random() < 0.6
                    else m.group(1), text * 3)
    assert corrupt_words(text * 3, rng_a, 0.6, (SHAPES,)) == direct


def test_scene_graph_critic_judges_by_the_scene_graph(store):
    with CaptionStore(store, readonly=True) as s:
        record = s.get(s.ids("pool")[0])
    scene = record.meta["scene_graph"]
    obj = scene["objects"][0]
    absent = next(c for c in COLOURS if (c, obj["shape"]) not in {(o["colour"], o["shape"]) for o in scene["objects"]})
    sentences = [record.meta["atomic_facts"][0], f"There is a {absent} {obj['shape']}.", "Hello there."]
    scores = scene_graph_scores(record, sentences)
    assert [s.verdict for s in scores] == [True, False, None]
    assert scores[1].critique == write_critique(sentences[1], scene)[0] and scores[2].critique is None
    bare = ImageRecord("no-scene", "test", 8, 8)
    with pytest.raises(VLForgeError, match="record no-scene: no scene graph"):
        scene_graph_scores(bare, ["There is a red circle."])


def test_rewrite_examples_ask_for_the_clean_caption_from_the_corrupted_one_and_its_critiques(store):
    data = RewriteSFTDataset(str(store), "pool", rate=0.3, seed=1)
    assert len(data) + data.unchanged == 8 and len(data) >= 4 and data.skipped == 0
    with CaptionStore(store, readonly=True) as s:
        for example in data.examples:
            record = s.get(example["key"])
            clean = gt_dense_caption(record)
            assert example["response"] == clean
            corrupted = corrupt_words(clean, random.Random(f"rewrite/1/{record.image_id}"), 0.3)
            assert example["instruction"].startswith(f"Rewrite: {corrupted} Critic: 1. ")
            sentences = RuleBasedDecomposer()(corrupted)
            scores = scene_graph_scores(record, sentences)
            wrong = [s for s, score in zip(sentences, scores, strict=True) if score.verdict is False]
            assert wrong and all(f". {s} Critic: " in example["instruction"] for s in wrong)
    with pytest.raises(VLForgeError, match="rate must be in"):
        RewriteSFTDataset(str(store), "pool", rate=0)


def test_tiny_rewriter_fits_and_rewrites_in_predict_beside_drop_inconsistent(store, tmp_path, capsys):
    code = console("critic", TOOLS, argv=[
        "fit", "--config", "critic:rewrite_tiny.yaml", "--data.init_args.store", str(store),
        "--data.init_args.rate", "0.3", "--data.init_args.batch_size", "3", "--data.init_args.val_limit", "1",
        "--trainer.max_steps", "3", "--trainer.enable_progress_bar", "false", "--run_root", str(tmp_path / "fit")])
    assert code == 0
    checkpoint = str(tmp_path / "fit" / "critic" / "version_0" / "checkpoints" / "last.ckpt")
    base = ["predict", "--config", "critic:predict_tiny.yaml", "--data.init_args.store", str(store),
            "--data.init_args.batch_size", "2", "--model.init_args.source", SOURCE,
            "--model.init_args.critic_source", "scene_graph", "--trainer.enable_progress_bar", "false"]
    assert console("critic", TOOLS, argv=[*base, "--run_root", str(tmp_path / "drop")]) == 0
    assert console("critic", TOOLS, argv=[
        *base, "--model.init_args.rewriter_source", "preset:llama_tiny", "--model.init_args.rewriter_checkpoint",
        checkpoint, "--model.init_args.rewrite_prompt", "short", "--model.init_args.rewrite_max_new_tokens", "8",
        "--model.init_args.target", "weak+rewrite", "--run_root", str(tmp_path / "rewrite")]) == 0
    rewriter = GenerativeRewriter("preset:llama_tiny", checkpoint, prompt="short", max_new_tokens=8)
    rewritten = 0
    with CaptionStore(store, readonly=True) as s:
        for image_id in s.ids("test"):
            record = s.get(image_id)
            original = record.captions_by(source=SOURCE)[0].text
            (dropped,) = record.captions_by(source="weak+critic")
            (new,) = record.captions_by(source="weak+rewrite")
            sentences = RuleBasedDecomposer()(original)
            scores = scene_graph_scores(record, sentences)
            verdicts = [score.verdict for score in scores]
            assert dropped.text == drop_inconsistent(sentences, verdicts)
            assert dropped.provenance["rewriter"] == "drop_inconsistent"
            assert new.provenance["rewriter"] == "generative" and new.provenance["scoring"] == "scene_graph"
            assert new.provenance["rewriter_checkpoint"] == checkpoint
            assert [row["verdict"] for row in new.scores["critic_sentences"]] == \
                [{True: "consistent", False: "inconsistent", None: "unscored"}[v] for v in verdicts]
            (expected,) = rewriter.rewrite_batch([original], [sentences], [verdicts], [[c.critique for c in scores]])
            if False in verdicts:
                rewritten += 1
                assert new.text == (expected if expected is not None else dropped.text)
            else:
                assert new.text == original == dropped.text  # nothing judged inconsistent: kept, model not asked
    assert rewritten >= 1  # the corrupted captions with a sentence judged inconsistent went through the model
    capsys.readouterr()
    out = tmp_path / "analysis.json"
    assert analyze(["--store", str(store), "--source", SOURCE, "--rewritten", "weak+rewrite", "--output",
                    str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["rewritten"] == "weak+rewrite" and report["before"]["images"] == report["after"]["images"] == 4
    assert report["before"]["chair_i"] > 0  # the weak source names shapes that are not there


def test_sentence_scope_examples_and_rewrites_replace_only_the_inconsistent_sentences(store, tmp_path):
    data = RewriteSFTDataset(str(store), "pool", prompt="sentence", rate=0.5, seed=2, scope="sentence")
    with CaptionStore(store, readonly=True) as s:
        for example in data.examples:
            record = s.get(example["key"].rsplit("-", 1)[0])
            clean_sentences = RuleBasedDecomposer()(gt_dense_caption(record))
            assert example["response"] == clean_sentences[int(example["key"].rsplit("-", 1)[1])]
            corrupted = example["instruction"].removeprefix("Correct: ").split(" Critic: ")[0]
            (score,) = scene_graph_scores(record, [corrupted])
            assert score.verdict is False and example["instruction"].endswith(
                critique_summary(score.critique, False))
    assert len(data) >= 8
    with pytest.raises(VLForgeError, match="scope must be one of caption, sentence"):
        RewriteSFTDataset(str(store), "pool", scope="word")

    from vlforge.common.lm.generate import generate_texts

    rewriter = GenerativeRewriter("preset:llama_tiny", prompt="sentence", scope="sentence", max_new_tokens=6)
    sentences = [["There is a red circle.", "There is a blue star.", "The sign reads hi."], ["There is a star."]]
    verdicts, critiques = [[True, False, None], [True]], [[None, "Summary: the star is yellow.", None], [None]]
    out = rewriter.rewrite_batch([" ".join(s) for s in sentences], sentences, verdicts, critiques)
    (answer,) = generate_texts(rewriter.holder, None, [rewrite_prompt("There is a blue star.", "the star is yellow.",
                                                                      "sentence")], decoding=rewriter.decoding)
    assert out[0] == " ".join(t for t in ("There is a red circle.", answer.strip(), "The sign reads hi.") if t)
    assert out[1] == "There is a star."  # nothing inconsistent: kept, the model not asked
