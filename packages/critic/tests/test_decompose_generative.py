"""The generative decomposer (#12 item 1): output parsing, the shipped prompts, decomposition SFT data, and a tiny
LM fitted from the shipped config and run through `decompose-eval --backend generative`."""

import json

import pytest

from vlforge.common.console import console
from vlforge.common.errors import VLForgeError
from vlforge.common.lm.collate import SFTCollator
from vlforge.common.presets import build_preset
from vlforge.common.store import CaptionStore
from vlforge.critic.cli import TOOLS
from vlforge.critic.data import DecompositionSFTDataset, gt_dense_caption
from vlforge.critic.decompose_eval import main as decompose_eval
from vlforge.critic.decompose_generative import (
    GenerativeDecomposer,
    decompose_prompt,
    decompose_prompts,
    parse_sentences,
)


@pytest.fixture(scope="module")
def store(tmp_path_factory, store_maker):
    return store_maker(tmp_path_factory.mktemp("decompose") / "shapes", {"pool": 6, "val": 2, "test": 2}, size=32)


def test_numbered_bulleted_and_blank_lines_parse_into_sentences():
    assert parse_sentences("1. There is a red circle.\n2) The red circle is small.\n\n  3. The red circle is in "
                           "the top left.") == ["There is a red circle.", "The red circle is small.",
                                                "The red circle is in the top left."]
    assert parse_sentences("- A dog sits.\n* The dog is brown.\n• The dog is on a mat\n\n") == [
        "A dog sits.", "The dog is brown.", "The dog is on a mat"]
    # common.lm.generate squashes whitespace: a list that came back on one line splits the same
    assert parse_sentences("1. A dog sits. 2. The dog is brown. - The mat is red.") == [
        "A dog sits.", "The dog is brown.", "The mat is red."]
    assert parse_sentences("A dog sits. The dog is brown.") == ["A dog sits.", "The dog is brown."]
    assert parse_sentences("There are 2 dogs.") == ["There are 2 dogs."]
    assert parse_sentences("") == [] and parse_sentences(" \n - \n") == []


def test_shipped_prompts_load_and_format():
    prompts = decompose_prompts()
    assert set(prompts) == {"fig12", "short"}
    fig12 = decompose_prompt("A red circle. It is small.", "fig12")
    assert fig12.startswith("You are an excellent visual language assistant. Please decompose the received image")
    assert "3. Ensure that each atomic fact is as independent and specific as possible." in fig12
    assert fig12.endswith("Image Description: A red circle. It is small.")
    assert decompose_prompt("A {x} circle.", "short") == "Atomic sentences, one per line: A {x} circle."
    with pytest.raises(VLForgeError, match="'long' is not one of fig12, short"):
        decompose_prompt("x", "long")


def test_decomposition_examples_are_the_dense_caption_and_its_atomic_facts(store):
    data = DecompositionSFTDataset(str(store), "pool", prompt="short")
    assert len(data) == 6 and data.skipped == 0
    with CaptionStore(store, readonly=True) as source:
        record = source.get(data[0]["key"])
    assert data[0]["instruction"] == decompose_prompt(gt_dense_caption(record), "short")
    assert data[0]["response"].split("\n") == record.meta["atomic_facts"]
    _, tokenizer = build_preset("llama_tiny")
    collator = SFTCollator(tokenizer, max_length=512)
    batch = collator([data[i] for i in range(len(data))])
    assert batch["input_ids"].shape[1] <= 512 and collator.counts["truncated"] == collator.counts["lost"] == 0
    with pytest.raises(VLForgeError, match="split 'nope'"):
        DecompositionSFTDataset(str(store), "nope")


def test_tiny_decomposer_fits_from_the_shipped_config_and_decomposes(store, tmp_path):
    code = console("critic", TOOLS, argv=[
        "fit", "--config", "critic:decompose_tiny.yaml", "--data.init_args.store", str(store),
        "--data.init_args.batch_size", "3", "--data.init_args.val_limit", "1", "--trainer.max_steps", "4",
        "--trainer.enable_progress_bar", "false", "--run_root", str(tmp_path)])
    assert code == 0
    checkpoint = tmp_path / "critic" / "version_0" / "checkpoints" / "last.ckpt"
    assert checkpoint.is_file()
    decomposer = GenerativeDecomposer("preset:llama_tiny", str(checkpoint), prompt="short", max_new_tokens=12,
                                      batch_size=2)
    with CaptionStore(store, readonly=True) as source:
        captions = [gt_dense_caption(r) for r in source.iter_records(split="test")]
    out = decomposer.decompose_batch([captions[0], "", captions[1]])
    assert len(out) == 3 and out[1] == []
    assert all(isinstance(s, str) and s for sentences in out for s in sentences)
    assert decomposer(captions[0]) == out[0]  # greedy: the same output one by one as batched (left padding)
    assert decomposer.empty_outputs == sum(not o for o in (out[0], out[2], out[0]))

    output = tmp_path / "generative.json"
    assert decompose_eval(["--store", str(store), "--split", "test", "--backend", "generative", "--source",
                           "preset:llama_tiny", "--checkpoint", str(checkpoint), "--prompt", "short",
                           "--max_new_tokens", "12", "--output", str(output)]) == 0
    result = json.loads(output.read_text())
    assert set(result["results"]["dense"]) == {"pronouns", "sentence_split", "rule_based", "generative"}
    assert result["generative"]["prompt"] == "short" and result["generative"]["empty_outputs"] >= 0
    generative = result["results"]["dense"]["generative"]
    assert generative["scene_facts"] == result["results"]["dense"]["rule_based"]["scene_facts"] > 0


def test_generative_backend_mistakes_are_one_line_errors(store, capsys):
    assert decompose_eval(["--store", str(store), "--backend", "generative"]) == 2
    assert decompose_eval(["--store", str(store), "--backend", "neural"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["vlforge-critic decompose-eval: error: --backend generative needs --source (e.g. "
                   "preset:llama_tiny with --checkpoint)",
                   "vlforge-critic decompose-eval: error: --backend 'neural' is not one of rule_based, generative"]
    with pytest.raises(VLForgeError, match="'long' is not one of"):
        GenerativeDecomposer("preset:llama_tiny", prompt="long")
