"""The LM agent (#14 item 2): the paper's prompts as YAML (load, fields, one-line mistakes), parsing the rewrite
from a model's output, the numbered panel picture, and make-data end to end with real tiny presets (LLaVA sees
the images, Llama reads stored descriptions) on a real ShapesWorld store and a real tiny CLIP retriever."""

from __future__ import annotations

import json

import pytest

from vlforge.common.errors import VLForgeError
from vlforge.common.store import CaptionStore
from vlforge.rewriter.agent_prompts import FIELDS, AgentPrompts, load_prompts, parse_rewrite
from vlforge.rewriter.agents import QueryCase
from vlforge.rewriter.blur import blur_query
from vlforge.rewriter.lm_agent import LMAgentSettings, LMRewriteAgent, panel_picture
from vlforge.rewriter.make_data import main
from vlforge.rewriter.pair_files import PRO_FILE, read_query_pairs
from vlforge.rewriter.retriever import Retriever
from vlforge.vlm.loading import load_clip

VALUES = {"query": "crimson disc", "num_wrong": 3, "num_panels": 4, "turn": 2, "max_words": 40,
          "right_description": "A red circle.", "wrong_descriptions": "Wrong image 1: A blue square."}


def test_the_paper_prompts_load_and_use_every_field():
    prompts = load_prompts("paper")
    for template, fields in FIELDS.items():
        text = prompts.fill(template, **{f: VALUES[f] for f in fields})
        for field in fields:
            assert str(VALUES[field]) in text, (template, field)
        assert "{" not in text and prompts.answer_tag in text


def _write(tmp_path, **templates):
    paper = load_prompts("paper")
    data = {"name": "mine", "answer_tag": paper.answer_tag, "images": paper.images,
            "descriptions": paper.descriptions, "blur": paper.blur, **templates}
    path = tmp_path / "mine.yaml"
    path.write_text(json.dumps(data))
    return str(path)


def test_prompt_mistakes_are_one_line_naming_the_field(tmp_path):
    with pytest.raises(VLForgeError, match=r"template 'blur' lacks the field \{query\}$"):
        load_prompts(_write(tmp_path, blur="Make it vague."))
    with pytest.raises(VLForgeError, match=r"template 'images' uses the unknown field \{colour\}"):
        load_prompts(_write(tmp_path, images="{query} {colour}"))
    with pytest.raises(VLForgeError, match=r"unknown key 'extra'"):
        load_prompts(_write(tmp_path, extra="x"))
    with pytest.raises(VLForgeError, match=r"neither shipped \(paper\) nor a YAML file"):
        load_prompts(str(tmp_path / "absent.yaml"))
    prompts = AgentPrompts("p", "Rewritten query:", "{query} {turn}", "{query} {right_description} "
                           "{wrong_descriptions}", "{query}")
    with pytest.raises(VLForgeError, match=r"template 'images' needs a value for \{turn\}"):
        prompts.fill("images", query="q")


@pytest.mark.parametrize("output,expected", [
    ("The right image has a red circle.\nRewritten query: a red circle at the top", "a red circle at the top"),
    ("Rewritten query: first\nmore thinking\nrewritten QUERY: \"a small red circle\"", "a small red circle"),
    ("Step 1: compare.\nRewritten query:\n\n  **a red circle on grey**  \n", "a red circle on grey"),
    ("no tag here\n\n'a red circle'\n", "a red circle"),
    ("Rewritten query:   \n", None),
    ("", None),
    ("  \n \" \n", None),
])
def test_parse_rewrite(output, expected):
    assert parse_rewrite(output, "Rewritten query:") == expected


def test_panel_picture_numbers_the_images_in_reading_order():
    from PIL import Image

    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)]
    picture = panel_picture([Image.new("RGB", (32, 20), c) for c in colours], panel_size=50)
    assert picture.size == (3 * 54 - 4, 2 * 54 - 4)  # 3 columns, 2 rows
    for number, colour in enumerate(colours):
        x, y = (number % 3) * 54, (number // 3) * 54
        assert picture.getpixel((x + 40, y + 40)) == colour
        assert picture.getpixel((x + 2, y + 2)) == (0, 0, 0)  # the number's box
    assert picture.getpixel((2 * 54 + 40, 54 + 40)) == (255, 255, 255)  # no sixth panel


def test_the_llava_agent_sees_the_images_and_proposes_reproducibly(shapes_store):
    store = CaptionStore(shapes_store)
    records = list(store.iter_records(split="pool"))[:4]
    settings = LMAgentSettings(source="preset:llava_tiny", decoding={"max_new_tokens": 8, "do_sample": True},
                               num_samples=3)
    agent = LMRewriteAgent.load(settings, "cpu", store.load_image, 40)
    assert agent.sees_images and not settings.trust_remote_code
    case = QueryCase("q#0", "crimson disc", records[0])
    first = agent.propose(case, records[1:], 1)
    assert first and all(isinstance(t, str) and t.strip() for t in first)
    assert agent.propose(case, records[1:], 1) == first  # seeded by query id and turn
    assert agent._parsed(["", "Rewritten query: a red circle", "Rewritten query:"], "q#9") == ["a red circle"]
    assert agent.unparsable.count("q#9") == 2


def _pro_rows_retested(out, shapes_store, retriever_checkpoint, min_similarity):
    rows = read_query_pairs(out / PRO_FILE)
    retriever = Retriever(load_clip(retriever_checkpoint))
    from vlforge.rewriter.embedding_cache import cached_image_index

    index, cached = cached_image_index(retriever.model, shapes_store, "pool", retriever_checkpoint, 32)
    assert cached
    for row in rows:
        texts = [c.text for c in row.candidates]
        ranks, scores = retriever.ranks(texts, index, [row.image_id] * len(texts))
        assert [c.rank for c in row.candidates] == ranks.tolist()
        assert [c.score for c in row.candidates] == pytest.approx(scores.tolist(), abs=1e-5)
        assert all(c.similarity >= min_similarity for c in row.candidates)
    return rows


def test_make_data_with_the_shipped_llava_config(shapes_store, retriever_checkpoint, tmp_path, capsys):
    out = tmp_path / "pairs"
    assert main(["--config", "rewriter:make_data_lm_tiny.yaml", "--store", shapes_store, "--split", "pool",
                 "--checkpoint", retriever_checkpoint, "--output_dir", str(out),
                 "--pairs.high_quality_rank", "5", "--pairs.min_similarity", "0.1"]) == 0
    assert "D_SFT" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["agent"] == "lm"
    assert summary["settings"]["lm"]["source"] == "preset:llava_tiny"
    assert summary["settings"]["lm"]["trust_remote_code"] is False
    assert summary["counts"]["queries"] == 8 and summary["counts"]["agent_proposals"] > 0
    # the loop re-tests the agent's rewrites with the retriever and filters them by MiniLM similarity
    rows = _pro_rows_retested(out, shapes_store, retriever_checkpoint, 0.1)
    counts = summary["counts"]
    assert rows or counts.get("filtered_low_similarity", 0) > 0


def test_make_data_with_a_text_only_lm_reading_descriptions(shapes_store, retriever_checkpoint, tmp_path):
    out = tmp_path / "pairs"
    assert main(["--store", shapes_store, "--split", "pool", "--checkpoint", retriever_checkpoint,
                 "--output_dir", str(out), "--agent", "lm", "--lm.source", "preset:llama_tiny",
                 "--lm.decoding", '{"max_new_tokens": 10, "do_sample": true}', "--lm.blur", "true",
                 "--descriptions_source", "gt", "--descriptions_kind", "dense", "--pairs.recall_k", "3",
                 "--pairs.max_turns", "2", "--pairs.max_queries", "12", "--pairs.high_quality_rank", "40",
                 "--pairs.min_similarity", "0.1"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["lm"]["blur"] is True and summary["settings"]["descriptions"]["kind"] == "dense"
    counts = summary["counts"]
    assert counts["agent_proposals"] > 0 and counts["low_quality"] > 0 and counts["high_quality"] > 0
    # every high-quality query went to the model's blur: made vaguer, not worse, or no parsable output
    assert counts.get("blurred", 0) + counts.get("blur_not_worse", 0) + counts.get("skipped_cannot_blur", 0) == \
        counts["high_quality"]
    rows = _pro_rows_retested(out, shapes_store, retriever_checkpoint, 0.1)
    blurred = [r for r in rows if r.origin == "blurred"]
    assert all(r.query != blur_query(r.original) for r in blurred)  # the model's blur, not the rule-based one


def test_unparsable_outputs_are_counted_with_the_query_id(shapes_store, retriever_checkpoint, tmp_path, capsys):
    from vlforge.common.presets import build_preset

    tokenizer = build_preset("llama_tiny")[1]
    only_eos = [i for i in range(len(tokenizer)) if i != tokenizer.eos_token_id]  # every output is empty
    out = tmp_path / "pairs"
    assert main(["--store", shapes_store, "--split", "pool", "--checkpoint", retriever_checkpoint,
                 "--output_dir", str(out), "--agent", "lm", "--lm.source", "preset:llama_tiny",
                 "--lm.decoding", json.dumps({"max_new_tokens": 4, "suppress_tokens": only_eos}),
                 "--descriptions_source", "gt", "--pairs.max_turns", "1", "--pairs.max_queries", "4",
                 "--pairs.blur", "false"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    counts = summary["counts"]
    low = counts.get("low_quality", 0)
    assert counts.get("skipped_unparsable_agent_output", 0) == 2 * low and counts.get("agent_proposals", 0) == 0
    skipped = [s for s in summary["skipped"] if s["reason"] == "unparsable_agent_output"]
    assert sorted({s["query_id"] for s in skipped}) == sorted(
        {s["query_id"] for s in summary["skipped"] if s["reason"] == "no_rewrite"})
    capsys.readouterr()
    assert main(["--store", shapes_store, "--split", "pool", "--checkpoint", retriever_checkpoint,
                 "--output_dir", str(out), "--agent", "lm", "--lm.source", "preset:llama_tiny"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "vlforge-rewriter make-data: error: --agent lm: 'preset:llama_tiny' is a text-only LM; it reads the images' "
        "descriptions: pass --descriptions_source (the captioner's name)")
    assert main(["--store", shapes_store, "--split", "pool", "--checkpoint", retriever_checkpoint,
                 "--output_dir", str(out), "--agent", "lm"]) == 2
    assert "--agent lm needs --lm.source" in capsys.readouterr().err
