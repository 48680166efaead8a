"""Share of a rewriter PPO step spent generating rollouts, on CPU with the tiny Llama policy (#14 "Performance";
OpenRLHF reports about 80 % on GPUs).

Runs `vlforge-rewriter fit --config rewriter:ppo_tiny.yaml` in this process for --steps rollout batches and times,
per training step, the whole step (batch start to batch end) and the `generate_sequences` call inside it (rollout
generation only; the reward, the reference / value forward passes and the PPO epochs are the rest). Both clocks run
in the same step, so the share is an interleaved ratio. Needs a store, a retriever checkpoint, a pair file and a
policy checkpoint that ends its rewrites (an SFT or PRO run), e.g. from experiments/rewriter/training_outcome.py:

    python bench/rewriter_ppo_rollout.py --work runs/rewriter_training --seed 0 --steps 12 \\
        --out bench/results/rewriter_ppo_rollout.json
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import lightning.pytorch as pl
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_report import write_report  # noqa: E402

from vlforge.common.cli import run_cli  # noqa: E402
from vlforge.rewriter import lit_ppo  # noqa: E402

ROUNDS: list[dict] = []


class StepClock(pl.Callback):
    """Wall time of each training step and of the rollout generation inside it."""

    generating = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        StepClock.generating = 0.0
        self.start, self.load_before = time.perf_counter(), os.getloadavg()[0]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = time.perf_counter() - self.start
        ROUNDS.append({"step_s": step, "generate_s": StepClock.generating, "share": StepClock.generating / step,
                       "load_before": self.load_before, "load_after": os.getloadavg()[0]})


def timed_generation(generate):
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return generate(*args, **kwargs)
        finally:
            StepClock.generating += time.perf_counter() - start
    return wrapper


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="runs/rewriter_training")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=12, help="rollout batches (each 4 PPO optimizer steps)")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--out", default="bench/results/rewriter_ppo_rollout.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    work = Path(args.work) / f"seed{args.seed}"
    lit_ppo.generate_sequences = timed_generation(lit_ppo.generate_sequences)
    code = run_cli("rewriter", [
        "fit", "--config", "rewriter:ppo_tiny.yaml",
        "--model.init_args.model.init_args.weights", str(work / "runs/sft/version_0/checkpoints/last.ckpt"),
        "--model.init_args.reward.init_args.checkpoint", str(work / "runs/vlm/version_0/checkpoints/last.ckpt"),
        "--model.init_args.reward.init_args.store", str(Path(args.work) / "store"),
        "--model.init_args.track_similarity", "false",
        "--data.init_args.train_file", str(work / "pairs_train/d_pro.jsonl"),
        "--data.init_args.batch_size", str(args.batch_size), "--trainer.max_steps", str(4 * args.steps),
        "--trainer.callbacks+=__main__.StepClock", "--trainer.enable_progress_bar", "false",
        "--trainer.enable_checkpointing", "false", "--trainer.logger", "false",
        "--run_root", "/tmp/vlforge-bench-rewriter-ppo", "--run_name", "ppo"])
    if code != 0:
        sys.exit(code)
    measured = ROUNDS[1:]  # the first step includes warm-up (first generate, retriever load is before it)
    summary = {"steps_measured": len(measured), "batch_size": args.batch_size,
               "median_step_s": statistics.median(r["step_s"] for r in measured),
               "median_generate_s": statistics.median(r["generate_s"] for r in measured),
               "median_generation_share": statistics.median(r["share"] for r in measured),
               "min_share": min(r["share"] for r in measured), "max_share": max(r["share"] for r in measured)}
    write_report(Path(args.out), measured, summary)
