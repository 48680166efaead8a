"""The rewriter's SFT and PRO steps (#14 item 4) from the `vlforge-rewriter` console with the shipped tiny configs on
real pair files: data modules, the PRO LitModule's candidate log-probs against one forward per candidate, learning
on the training pairs, and the chain SFT checkpoint -> PRO."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from vlforge.common.checkpoint import read_checkpoint_state_dict
from vlforge.common.cli import run_cli
from vlforge.common.errors import VLForgeError
from vlforge.common.lm.collate import SFTCollator
from vlforge.common.lm.logprobs import sequence_logprobs
from vlforge.common.lm.model import GenerativeModel
from vlforge.rewriter.datamodules import RewriterPRODataModule, RewriterSFTDataModule
from vlforge.rewriter.examples import spread_candidates
from vlforge.rewriter.lit_pro import RewriterPROLitModule
from vlforge.rewriter.pair_files import PRO_FILE, SFT_FILE, read_query_pairs
from vlforge.rewriter.query_pairs import Candidate

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
         "--trainer.num_sanity_val_steps", "0"]


def metric_series(run_dir: Path, name: str) -> list[float]:
    with open(run_dir / "metrics.csv") as rows:
        return [float(r[name]) for r in csv.DictReader(rows) if r.get(name)]


def test_data_modules_read_pair_files(pair_dir):
    sft = RewriterSFTDataModule(str(pair_dir / SFT_FILE))
    sft.setup("fit")
    rows = read_query_pairs(pair_dir / SFT_FILE)
    assert len(sft.train_set) == len(rows) > 0
    best = max(rows[0].candidates, key=lambda c: c.score).text
    assert sft.train_set[0]["response"] == best and rows[0].query in sft.train_set[0]["instruction"]
    pro = RewriterPRODataModule(str(pair_dir / PRO_FILE), num_candidates=3)
    pro.setup("fit")
    example = pro.train_set[0]
    assert len(example["responses"]) == 3 and example["rewards"] == sorted(example["rewards"], reverse=True)
    short = sum(len(r.candidates) < 3 for r in read_query_pairs(pair_dir / PRO_FILE))
    assert len(pro.skipped) == short and len(pro.train_set) + short == len(read_query_pairs(pair_dir / PRO_FILE))


def test_mistakes_in_a_training_step_are_one_line(pair_dir, tmp_path, capsys):
    """A PRO file with no row of enough candidates, and a missing weights file (a model's __init__ raises it;
    jsonargparse would fold it into a ValueError): exit 2 with one line naming the file."""
    base = ["fit", "--config", "rewriter:pro_tiny.yaml", "--data.init_args.train_file", str(pair_dir / PRO_FILE),
            "--run_root", str(tmp_path), *QUIET]
    assert run_cli("rewriter", [*base, "--data.init_args.num_candidates", "99"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{pair_dir / PRO_FILE}: no training example;" in err
    assert "candidates < num_candidates 99" in err
    missing = tmp_path / "missing.ckpt"
    assert run_cli("rewriter", [*base, "--model.init_args.model.init_args.weights", str(missing)]) == 2
    assert capsys.readouterr().err == f"vlforge-rewriter: error: checkpoint {missing}: no such file or folder\n"


def test_spread_candidates_keeps_best_and_worst():
    candidates = [Candidate(f"c{i}", score=float(i), rank=1, similarity=1.0, turn=0) for i in range(5)]
    assert [c.text for c in spread_candidates(candidates, 3)] == ["c4", "c2", "c0"]
    with pytest.raises(VLForgeError):
        spread_candidates(candidates[:2], 3)


def test_pro_candidate_logps_match_one_forward_per_candidate(pair_dir):
    torch.manual_seed(0)
    module = RewriterPROLitModule(GenerativeModel("preset:llama_tiny"), max_length=128)
    data = RewriterPRODataModule(str(pair_dir / PRO_FILE), num_candidates=3)
    data.setup("fit")
    examples = data.train_set[:3]
    batch = module.on_before_batch_transfer(examples, 0)
    logps, lengths = module.candidate_logps(batch)
    collator = SFTCollator(module.processor, max_length=128)
    for i, example in enumerate(examples):
        for j, response in enumerate(example["responses"]):
            single = collator([{**example, "response": response, "responses": None} | {"responses": [response]}])
            logits = module.model(input_ids=single["input_ids"], attention_mask=single["attention_mask"]).logits
            expected, count = sequence_logprobs(logits, single["labels"])
            torch.testing.assert_close(logps[i, j], expected[0], atol=1e-4, rtol=1e-4)
            assert lengths[i, j] == count[0]
    torch.testing.assert_close(batch["rewards"], torch.tensor([e["rewards"] for e in examples]))


def test_sft_then_pro_from_the_console(sft_run, pair_dir, tmp_path):
    """SFT learns D_SFT (train loss falls by half), PRO starts from exactly its weights and learns the ranking of
    the training candidates (ranking loss falls)."""
    sft_dir = sft_run
    losses = metric_series(sft_dir, "train/loss")
    assert len(losses) >= 50 and sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5
    assert (sft_dir / "samples.jsonl").is_file()  # greedy rewrites of validation queries were logged
    sft_checkpoint = sft_dir / "checkpoints" / "last.ckpt"

    code = run_cli("rewriter", ["fit", "--config", "rewriter:pro_tiny.yaml",
                                "--model.init_args.model.init_args.weights", str(sft_checkpoint),
                                "--data.init_args.train_file", str(pair_dir / PRO_FILE),
                                "--data.init_args.num_candidates", "3", "--trainer.max_steps", "40",
                                "--seed_everything", "0", "--run_name", "pro", "--run_root", str(tmp_path), *QUIET])
    assert code == 0
    pro_dir = tmp_path / "pro" / "version_0"
    ranking = metric_series(pro_dir, "train/ranking")
    assert len(ranking) >= 30 and sum(ranking[-8:]) / 8 < sum(ranking[:8]) / 8
    start = GenerativeModel("preset:llama_tiny", weights=str(sft_checkpoint)).model.state_dict()
    sft_weights = {k[len("model."):]: v for k, v in read_checkpoint_state_dict(sft_checkpoint).items()}
    assert all(torch.equal(start[k], sft_weights[k]) for k in start)
    pro_weights = read_checkpoint_state_dict(pro_dir / "checkpoints" / "last.ckpt")
    assert not torch.equal(pro_weights["model.lm_head.weight"], sft_weights["lm_head.weight"])
