"""`vlforge-rewriter predict` (#14 item 5): a real tiny Llama policy taking its weights from a real SFTLitModule
checkpoint rewrites a real store split's queries into the store, through the shipped config, in one process and as
a real 2-process CPU DDP run (gloo) whose rank shard stores are merged; resumable; skipped rewrites recorded by
query id."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import lightning as L
import pytest
import torch

from vlforge.common.cli import VLForgeCLI, run_cli
from vlforge.common.lm.generated_store import failures
from vlforge.common.lm.lit_sft import SFTLitModule
from vlforge.common.lm.model import GenerativeModel
from vlforge.common.lm.shards import default_shard_root
from vlforge.common.rewrites import queries_of, rewrites_by_query
from vlforge.common.shapes.build import build_shapes_store
from vlforge.common.store import CaptionStore
from vlforge.rewriter.lit_predict import SUMMARY_FILE
from vlforge.rewriter.rewrite_batch import INSTRUCTION, RewriteSettings, rewrite_records, skip_reason

CONFIG = "rewriter:predict_tiny.yaml"
NAME = "rewriter"
SPLIT = "test"


def sft_examples(store: str) -> list[dict[str, str]]:
    """Query -> the image's gt short caption, except the second query of every other image -> its gt descriptive
    caption (so an image's queries have one shared or two different rewrites) and the split's first query -> ""
    (so the policy learns an empty rewrite for it)."""
    examples = []
    with CaptionStore(store) as s:
        for n, record in enumerate(s.iter_records(split=SPLIT)):
            short = record.captions_by(source="gt", kind="short")[0].text
            descriptive = record.captions_by(source="gt", kind="descriptive")[0].text
            for k, (_, caption) in enumerate(queries_of(record, "gt")):
                response = descriptive if k == 1 and n % 2 else short
                examples.append({"instruction": INSTRUCTION.format(query=caption.text),
                                 "response": "" if not examples else response})
    return examples


@pytest.fixture(scope="module")
def base_store(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("rewrite") / "store"
    build_shapes_store(path, 60, seed=0, image_size=32, workers=1)
    return str(path)


@pytest.fixture(scope="module")
def checkpoint(base_store, tmp_path_factory) -> str:
    """A tiny SFT policy that has memorised the test split's query -> short-caption pairs (150 steps)."""
    torch.manual_seed(0)
    examples = sft_examples(base_store)
    module = SFTLitModule(GenerativeModel("preset:llama_tiny", kind="causal_lm"), lr=3e-3, warmup_ratio=0.0)
    loader = torch.utils.data.DataLoader(examples, batch_size=len(examples), shuffle=True, collate_fn=list)
    trainer = L.Trainer(max_steps=150, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu")
    trainer.fit(module, loader)
    path = tmp_path_factory.mktemp("sft") / "sft.ckpt"
    trainer.save_checkpoint(path)
    return str(path)


@pytest.fixture
def store(base_store, tmp_path) -> str:
    path = tmp_path / "store"
    shutil.copytree(base_store, path)
    return str(path)


def _args(store, checkpoint, tmp_path, *extra):
    return ["predict", "--config", CONFIG, "--data.init_args.store", store, "--model.init_args.checkpoint", checkpoint,
            "--run_root", str(tmp_path / "runs"), "--trainer.enable_progress_bar=false", *extra]


def _rewrites(store) -> dict[str, str]:
    with CaptionStore(store) as s:
        return {q: t for r in s.iter_records(split=SPLIT) for q, t in rewrites_by_query(r, NAME).items()}


def _reference(store, checkpoint, **settings) -> tuple[dict[str, str], dict[str, str]]:
    """The same policy through rewrite_records directly: (query id -> rewrite, query id -> skip reason)."""
    model = GenerativeModel("preset:llama_tiny", kind="causal_lm", weights=checkpoint)
    with CaptionStore(store) as s:
        records = list(s.iter_records(split=SPLIT))
    out = rewrite_records(model.model, model.processor, records, RewriteSettings(**settings), batch_size=16)
    texts = {e["query_id"]: c.text for cs in out.captions.values() for c in cs for e in c.provenance["queries"]}
    return texts, out.failed


def test_shipped_predict_config_instantiates(store):
    cli = VLForgeCLI("rewriter", ["--config", CONFIG, "--data.init_args.store", store], run=False)
    assert cli.model.name == NAME and cli.datamodule.split == SPLIT


def test_skip_reasons():
    assert skip_reason("  ", True, 40) == "empty_rewrite"
    assert skip_reason("a red circle", False, 40) == "rewrite_too_long"
    assert skip_reason("a red circle", True, 2) == "rewrite_too_long"
    assert skip_reason("a red circle", True, 3) is None


def test_predict_rewrites_the_split_with_provenance_resumes_and_records_skips(store, checkpoint, tmp_path):
    examples = {e["instruction"]: e["response"] for e in sft_examples(store)}
    examples = {k.removeprefix(INSTRUCTION.format(query="")): v for k, v in examples.items()}
    assert run_cli("rewriter", _args(store, checkpoint, tmp_path, "--data.init_args.limit", "2")) == 0
    first = _rewrites(store)
    assert first and all(q.split("#")[0] in sorted(CaptionStore(store).ids(SPLIT))[:2] for q in first)
    assert run_cli("rewriter", _args(store, checkpoint, tmp_path)) == 0  # the rest of the split
    after = _rewrites(store)
    assert {q: after[q] for q in first} == first
    reference, skipped = _reference(store, checkpoint)
    assert after == reference
    with CaptionStore(store) as s:
        records = list(s.iter_records(split=SPLIT))
        recorded = failures(s, NAME)
        queries = {q: c.text for r in records for q, c in queries_of(r, "gt")}
        stored = [c for r in records for c in r.captions_by(source=NAME)]
    # the memorised policy: every query's rewrite is its image's short caption, the first query's is empty
    first_query = min(queries, key=lambda q: (q.split("#")[0], int(q.split("#")[1])))
    assert recorded == skipped == {first_query: "empty_rewrite"}
    assert len(after) == len(queries) - 1
    matches = sum(after[q] == examples[queries[q]] for q in after)
    assert matches >= 0.9 * len(after)
    for caption in stored:
        assert caption.kind == "query"
        provenance = caption.provenance
        assert provenance["checkpoint"] == checkpoint and provenance["policy"] == "preset:llama_tiny"
        assert all(queries[e["query_id"]] == e["original"] for e in provenance["queries"])
    assert sum(len(c.provenance["queries"]) for c in stored) == len(after) > len(stored)  # shared rewrites stored once
    assert any(len(r.captions_by(source=NAME)) == 2 for r in records)  # two different rewrites of one image
    summary = json.loads(sorted((tmp_path / "runs").rglob(SUMMARY_FILE))[-1].read_text())  # the second run's
    assert summary["queries"] == len(queries) and summary["rewritten"] == len(after)
    assert summary["skipped"] == [{"query_id": first_query, "reason": "empty_rewrite"}]
    assert not default_shard_root(store).exists()


def test_over_long_rewrites_are_skipped_then_retried(store, checkpoint, tmp_path):
    short = "--model.init_args.rewrite.decoding.max_new_tokens=3"
    assert run_cli("rewriter", _args(store, checkpoint, tmp_path, short)) == 0
    with CaptionStore(store) as s:
        recorded = failures(s, NAME)
        count = sum(len(queries_of(r, "gt")) for r in s.iter_records(split=SPLIT))
    assert _rewrites(store) == {} and len(recorded) == count
    reasons = sorted(recorded.values())  # the first query ends at once (empty); the rest are cut (too long)
    assert reasons == ["empty_rewrite"] + ["rewrite_too_long"] * (count - 1)
    assert run_cli("rewriter", _args(store, checkpoint, tmp_path)) == 0
    with CaptionStore(store) as s:
        assert set(failures(s, NAME).values()) == {"empty_rewrite"} and len(failures(s, NAME)) == 1
    assert len(_rewrites(store)) == count - 1


@pytest.mark.ddp
def test_two_process_ddp_predict_shards_the_split_and_merges(store, checkpoint, tmp_path):
    # Lightning re-launches this command line for rank 1, so the run goes through the console module.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "vlforge.rewriter.cli",
                          *_args(store, checkpoint, tmp_path, "--config", "common:trainer/ddp_cpu_2.yaml",
                                 "--data.init_args.batch_size", "2")],
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "MEMBER: 2/2" in run.stdout + run.stderr
    reference, skipped = _reference(store, checkpoint)
    assert _rewrites(store) == reference
    with CaptionStore(store) as s:
        assert failures(s, NAME) == skipped
    assert not default_shard_root(store).exists()
