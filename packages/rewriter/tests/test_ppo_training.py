"""The rewriter's PPO step (#14 item 4, Eqs. 4-5) with a real tiny Llama policy, a real tiny CLIP retriever and real
Lightning trainers: rollout log-probs against a training forward pass, the reward against the retriever's scores,
skip-and-count of bad rollouts, a fit from the console, exact resume of the KL controller / value head / optimizer,
and a 2-process DDP fit whose β update uses the KL and rollout count of both processes."""

from __future__ import annotations

import csv
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vlforge.common.cli import run_cli
from vlforge.common.lm.generate import GeneratedSequence
from vlforge.common.lm.model import GenerativeModel
from vlforge.rewriter.datamodules import RewriterQueryDataModule
from vlforge.rewriter.kl import ERROR_CLIP
from vlforge.rewriter.lit_ppo import KL_KEY, SKIPPED_KEY, RewriterPPOLitModule
from vlforge.rewriter.pair_files import PRO_FILE, read_query_pairs
from vlforge.rewriter.retriever import Retriever
from vlforge.rewriter.reward import RetrievalReward
from vlforge.rewriter.rollout import EMPTY, NAN_REWARD, OVER_LENGTH, screen

QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def ppo_args(pair_file: Path | str, store: str, checkpoint: str, root: Path, name: str, steps: int,
             policy: Path) -> list[str]:
    return ["fit", "--config", "rewriter:ppo_tiny.yaml",
            "--model.init_args.model.init_args.weights", str(policy / "checkpoints" / "last.ckpt"),
            "--model.init_args.reward.init_args.checkpoint", checkpoint,
            "--model.init_args.reward.init_args.store", store,
            "--model.init_args.track_similarity", "false", "--model.init_args.ppo_epochs", "2",
            "--model.init_args.max_new_tokens", "24", "--data.init_args.train_file", str(pair_file),
            "--data.init_args.batch_size", "4", "--trainer.max_steps", str(steps), "--seed_everything", "0",
            "--run_name", name, "--run_root", str(root), *QUIET]


def rows_of(path: Path) -> list[dict]:
    with open(path) as rows:
        return list(csv.DictReader(rows))


@pytest.fixture(scope="module")
def reward(shapes_store, retriever_checkpoint) -> RetrievalReward:
    reward = RetrievalReward(retriever_checkpoint, shapes_store, "pool")
    reward.load()
    return reward


def test_reward_is_eq4_on_the_retrievers_scores(reward, pair_dir):
    rows = read_query_pairs(pair_dir / PRO_FILE)[:4]
    rewrites, queries = [r.candidates[0].text for r in rows], [r.query for r in rows]
    images = [r.image_id for r in rows]
    got = reward(rewrites, queries, images)
    retriever = Retriever(reward.retriever.model)
    expected = 20.0 * (retriever.scores(rewrites, reward.index, images)
                       - retriever.scores(queries, reward.index, images))
    torch.testing.assert_close(got, expected)
    missing = reward(rewrites[:1], queries[:1], ["no-such-image"])
    assert torch.isnan(missing).all()  # the caller skips and counts it


def test_screen_names_each_bad_rollout():
    eos = 2
    ended = GeneratedSequence("a red circle", torch.tensor([1]), torch.tensor([5, 6, eos]), torch.zeros(3))
    assert screen(ended, 0.5, eos, max_new_tokens=3) is None
    assert screen(GeneratedSequence("", torch.tensor([1]), torch.tensor([eos]), torch.zeros(1)), 0.5, eos, 3) == EMPTY
    cut = GeneratedSequence("a red circle", torch.tensor([1]), torch.tensor([5, 6, 7]), torch.zeros(3))
    assert screen(cut, 0.5, eos, max_new_tokens=3) == OVER_LENGTH
    assert screen(ended, float("nan"), eos, max_new_tokens=3) == NAN_REWARD


def test_rollout_logprobs_equal_a_training_forward_pass(reward, pair_dir, sft_run):
    """The behaviour policy's log-probs from generation (left-padded, KV cache) are the ones a right-padded training
    forward recomputes, so the PPO ratio starts at 1; skipped rows carry no mask."""
    torch.manual_seed(0)
    policy = GenerativeModel("preset:llama_tiny", weights=str(sft_run / "checkpoints" / "last.ckpt"))
    module = RewriterPPOLitModule(policy, reward, max_new_tokens=24)
    data = RewriterQueryDataModule(str(pair_dir / PRO_FILE))
    data.setup("fit")
    batch = data.train_set[:6]
    packed, rewards, texts = module.rollout(batch)
    logps, values = module.forward_rollouts(module.model, packed, with_values=True)
    assert packed.mask.sum() > 0
    torch.testing.assert_close(logps * packed.mask, packed.old_logprobs, atol=1e-4, rtol=1e-4)
    assert values.shape == packed.mask.shape and torch.all(values == 0)  # the zero-initialised value head
    assert len(texts) == len(batch)
    for row in range(len(batch)):
        if not packed.mask[row].any():  # a skipped rollout: no reward, no label it is trained on
            assert rewards[row] == 0
    estimates = module.advantages(packed, rewards)
    assert torch.all(estimates["advantages"][packed.mask == 0] == 0)
    assert torch.allclose(estimates["kl"], torch.zeros_like(estimates["kl"]), atol=1e-4)  # π = π_ref at the start


def test_degenerate_rollouts_are_penalised_instead_of_skipped_when_asked(reward, pair_dir, sft_run):
    """With ``degenerate_reward``, an over-length rollout (2 new tokens rarely reach EOS) is trained on with that
    reward over all its tokens and still counted; without it, the same rollout (same seed) carries no mask."""
    data = RewriterQueryDataModule(str(pair_dir / PRO_FILE))
    data.setup("fit")
    batch = data.train_set[:6]
    weights = str(sft_run / "checkpoints" / "last.ckpt")
    outcomes = {}
    for penalty in (None, -5.0):
        module = RewriterPPOLitModule(GenerativeModel("preset:llama_tiny", weights=weights), reward,
                                      max_new_tokens=2, degenerate_reward=penalty)
        torch.manual_seed(0)
        outcomes[penalty] = (*module.rollout(batch), module.skipped)
    (skipped_pack, skipped_rewards, texts, skipped_counts), (pack, rewards, same_texts, counts) = outcomes.values()
    assert texts == same_texts and counts == skipped_counts and counts[OVER_LENGTH] >= 1
    over = [row for row in range(len(batch)) if not skipped_pack.mask[row].any()]
    assert len(over) == counts[OVER_LENGTH] + counts[EMPTY]
    for row in over:
        assert skipped_rewards[row] == 0 and rewards[row] == -5.0
        assert pack.mask[row].sum() == (pack.labels[row] != -100).sum() > 0  # every generated token is trained on
    kept = [row for row in range(len(batch)) if row not in over]
    torch.testing.assert_close(rewards[kept], skipped_rewards[kept])


def test_value_loss_trains_the_value_head_only(reward, pair_dir, sft_run):
    policy = GenerativeModel("preset:llama_tiny", weights=str(sft_run / "checkpoints" / "last.ckpt"))
    module = RewriterPPOLitModule(policy, reward, max_new_tokens=24)
    data = RewriterQueryDataModule(str(pair_dir / PRO_FILE))
    data.setup("fit")
    packed, _, _ = module.rollout(data.train_set[:4])
    _, values = module.forward_rollouts(module.model, packed, with_values=True)
    ((values - 1.0) ** 2 * packed.mask).sum().backward()
    assert module.value_head.summary.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in module.model.parameters())


def test_ppo_fit_resumes_exactly(shapes_store, retriever_checkpoint, pair_dir, sft_run, tmp_path):
    """8 steps in one go (a checkpoint kept at step 4) vs a new fit from that step-4 checkpoint: the same β,
    value head, policy, optimizer state and skip counts at step 8."""
    pairs = pair_dir / PRO_FILE
    every_4 = ["--trainer.callbacks+=lightning.pytorch.callbacks.ModelCheckpoint",
               "--trainer.callbacks.every_n_train_steps", "4", "--trainer.callbacks.save_top_k", "-1",
               "--trainer.callbacks.save_last", "true"]
    whole_args = ppo_args(pairs, shapes_store, retriever_checkpoint, tmp_path, "whole", 8, sft_run)
    assert run_cli("rewriter", [*whole_args, *every_4]) == 0
    checkpoints = tmp_path / "whole" / "version_0" / "checkpoints"
    step4 = next(checkpoints.glob("*step=4.ckpt"))
    first = torch.load(step4, weights_only=True)
    assert first[KL_KEY]["value"] != 0.1  # β moved after the first rollouts
    resumed_args = ppo_args(pairs, shapes_store, retriever_checkpoint, tmp_path, "resumed", 8, sft_run)
    assert run_cli("rewriter", [*resumed_args, "--ckpt_path", str(step4)]) == 0
    whole = torch.load(checkpoints / "last.ckpt", weights_only=True)
    resumed = torch.load(tmp_path / "resumed" / "version_0" / "checkpoints" / "last.ckpt", weights_only=True)
    assert whole["global_step"] == resumed["global_step"] == 8
    assert whole[KL_KEY] == resumed[KL_KEY] and whole[SKIPPED_KEY] == resumed[SKIPPED_KEY]
    assert any(n.startswith("value_head.") for n in whole["state_dict"])
    for name, value in whole["state_dict"].items():
        assert torch.equal(value, resumed["state_dict"][name]), name
    exp_avg = [s["exp_avg"] for s in whole["optimizer_states"][0]["state"].values()]
    exp_avg_resumed = [s["exp_avg"] for s in resumed["optimizer_states"][0]["state"].values()]
    assert all(torch.equal(a, b) for a, b in zip(exp_avg, exp_avg_resumed, strict=True))


def test_bad_rollouts_are_skipped_and_counted_with_the_query_id(shapes_store, retriever_checkpoint, pair_dir,
                                                                sft_run, tmp_path, caplog):
    rows = [json.loads(line) for line in (pair_dir / PRO_FILE).read_text().splitlines()[:4]]
    rows[1]["image_id"] = "missing-image"
    rows[1]["query_id"] = "missing-image#0"
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with caplog.at_level(logging.WARNING, logger="vlforge.rewriter.lit_ppo"):
        code = run_cli("rewriter", [*ppo_args(bad, shapes_store, retriever_checkpoint, tmp_path, "bad", 2, sft_run),
                                    "--model.init_args.max_new_tokens", "2"])
    assert code == 0
    skipped = torch.load(tmp_path / "bad" / "version_0" / "checkpoints" / "last.ckpt", weights_only=True)[SKIPPED_KEY]
    assert skipped.get(NAN_REWARD, 0) + skipped.get(OVER_LENGTH, 0) + skipped.get(EMPTY, 0) >= 1
    assert "query missing-image#0: rollout skipped" in caplog.text
    assert skipped.get(OVER_LENGTH, 0) >= 1  # 2 new tokens rarely reach EOS with a random policy


def test_validation_logs_the_reward_of_greedy_rewrites_and_samples_them(shapes_store, retriever_checkpoint, pair_dir,
                                                                        sft_run, reward, tmp_path):
    code = run_cli("rewriter", [*ppo_args(pair_dir / PRO_FILE, shapes_store, retriever_checkpoint, tmp_path, "val", 2,
                                          sft_run),
                                "--data.init_args.val_file", str(pair_dir / PRO_FILE), "--data.init_args.val_limit",
                                "2", "--trainer.limit_val_batches", "1", "--trainer.val_check_interval", "1"])
    assert code == 0
    run = tmp_path / "val" / "version_0"
    samples = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    queries = read_query_pairs(pair_dir / PRO_FILE)[:2]
    assert [(s["step"], s["example"]) for s in samples] == [(2, q.query_id) for q in queries]  # 1 batch: 2 updates
    assert all(q.query in s["prompt"] for s, q in zip(samples, queries, strict=True))
    logged = [float(r["val/reward"]) for r in rows_of(run / "metrics.csv") if r.get("val/reward")]
    # val/reward is the mean reward of the same greedy rewrites the samples show
    expected = reward([s["output"] for s in samples], [q.query for q in queries], [q.image_id for q in queries])
    assert logged == [pytest.approx(expected.mean().item(), abs=1e-4)]


@pytest.mark.ddp
def test_ppo_ddp_two_processes_update_beta_from_both(shapes_store, retriever_checkpoint, pair_dir, sft_run,
                                                    tmp_path):
    """Two gloo processes (ddp_cpu_2), 4 queries each: β's update uses the KL averaged over both processes and
    n_steps = 8 rollouts. Lightning re-launches the command line for rank 1, so the fit runs through the console
    module in a subprocess."""
    args = ppo_args(pair_dir / PRO_FILE, shapes_store, retriever_checkpoint, tmp_path, "ddp", 2, sft_run)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    ddp = subprocess.run([sys.executable, "-m", "vlforge.rewriter.cli", *args,
                          "--config", "common:trainer/ddp_cpu_2.yaml", "--model.init_args.init_kl_coef", "0.5",
                          "--model.init_args.kl_horizon", "10",
                          "--model.init_args.kl_target", "0.05"],
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert "MEMBER: 2/2" in ddp.stdout + ddp.stderr
    run = tmp_path / "ddp" / "version_0"
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    logged = [r for r in rows_of(run / "metrics.csv") if r.get("train/kl")]
    assert len(logged) == 1  # 2 optimizer steps = one rollout batch with ppo_epochs 2
    kl, rollouts = float(logged[0]["train/kl"]), int(float(logged[0]["train/rollouts"]))
    assert rollouts + float(logged[0]["train/skipped"]) == 2 * 4  # both processes' batches of 4
    assert rollouts > 4  # more than one process's rollouts entered the update
    error = min(max(kl / 0.05 - 1.0, -ERROR_CLIP), ERROR_CLIP)
    assert checkpoint[KL_KEY]["value"] == pytest.approx(0.5 * (1 + error * rollouts / 10), rel=1e-5)
