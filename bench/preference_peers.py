"""Preference and SFT training on CPU: vlforge's LitModules against TRL 1.16's ``DPOTrainer`` / ``SFTTrainer`` on the
same tiny Qwen2-VL (random weights, bench/preference_step.py's tiny sizes), the same pairs, batch and steps,
interleaved rounds.

Setups (each a fresh process, so peak RSS is its own; 1 thread):
- ``vlforge_full_copy`` / ``vlforge_dpo_copy``: ``CaptionerPreferenceLitModule`` with the full loss (weights
  0.8, 1.0, 0.2) or DPO only (1, 0, 0), frozen reference copy;
- ``vlforge_full_precomputed``: the full loss with precomputed reference log-probs (computed before fit, not timed);
- ``trl_mpo_copy``: ``DPOTrainer`` with loss_type ["sigmoid", "bco_pair", "sft"], loss_weights [0.8, 0.2, 1.0] (the
  MPO combination), frozen reference copy; ``trl_sigmoid_copy``: plain "sigmoid". TRL 1.16 refuses
  ``precompute_ref_log_probs=True`` for vision datasets, so it has no precomputed-reference setup here;
- ``vlforge_sft`` / ``trl_sft``: ``CaptionerSFTLitModule`` / ``SFTTrainer`` on the chosen and rejected responses as
  SFT examples, 2P examples per batch (the same sequences as a preference batch of P pairs).

Timed: the wall time between consecutive step ends (Lightning: on_train_batch_end; TRL: on_step_end), so fetching
and collating the batch count on both sides (vlforge collates in ``on_before_batch_transfer``, inside the step;
TRL in its DataLoader collator, before it), the first ``--warmup`` steps excluded, median per run.
samples/s = pairs (or SFT examples / 2) per second, so preference and SFT rates compare per pair.

    python bench/preference_peers.py --rounds 3 --out bench/results/preference_peers.json
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_report import write_report

BENCH = Path(__file__).resolve().parent
SETUPS = ("vlforge_full_copy", "vlforge_dpo_copy", "vlforge_full_precomputed", "trl_mpo_copy", "trl_sigmoid_copy",
          "vlforge_sft", "trl_sft")


def run_vlforge(setup: str, captioner, data: list[dict], args) -> list[float]:
    import lightning as L
    from torch.utils.data import DataLoader

    from vlforge.captioner.lit_preference import CaptionerPreferenceLitModule
    from vlforge.captioner.lit_sft import CaptionerSFTLitModule

    if setup == "vlforge_sft":
        module = CaptionerSFTLitModule(captioner, lr=1e-6)
        rows = [dict(d, response=r) for d in data for r in (d["chosen"], d["rejected"])]
        loader = DataLoader(rows, batch_size=2 * args.pairs_per_batch, collate_fn=list)
    else:
        weights = (1.0, 0.0, 0.0) if setup == "vlforge_dpo_copy" else (0.8, 1.0, 0.2)
        reference = "precomputed" if setup.endswith("precomputed") else "copy"
        module = CaptionerPreferenceLitModule(captioner, reference=reference, weights=weights, lr=1e-6)
        loader = DataLoader(data, batch_size=args.pairs_per_batch, collate_fn=list)
        if reference == "precomputed":
            module.precompute_reference(loader)
    class Clock(L.Callback):
        def __init__(self) -> None:
            self.ends: list[float] = []

        def on_train_batch_end(self, *_) -> None:
            self.ends.append(time.perf_counter())

    clock = Clock()
    trainer = L.Trainer(max_steps=args.warmup + args.steps, accelerator="cpu", devices=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[clock], default_root_dir=str(args.workdir / setup))
    trainer.fit(module, loader)
    return [b - a for a, b in zip(clock.ends, clock.ends[1:])]


def run_trl(setup: str, captioner, data: list[dict], args) -> list[float]:
    from datasets import Dataset
    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        def __init__(self) -> None:
            self.ends: list[float] = []

        def on_step_end(self, *_, **__) -> None:
            self.ends.append(time.perf_counter())

    def user(d: dict) -> list[dict]:
        return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": d["instruction"]}]}]

    def answer(text: str) -> list[dict]:
        return [{"role": "assistant", "content": [{"type": "text", "text": text}]}]

    common = {"output_dir": str(args.workdir / setup), "max_steps": args.warmup + args.steps, "use_cpu": True,
              "report_to": [], "save_strategy": "no", "learning_rate": 1e-6, "dataloader_num_workers": 0,
              "logging_steps": 1, "disable_tqdm": True, "lr_scheduler_type": "cosine", "warmup_steps": 1}
    clock = Clock()
    if setup == "trl_sft":
        from trl import SFTConfig, SFTTrainer

        rows = [{"images": [d["image"]], "messages": user(d) + answer(r)} for d in data
                for r in (d["chosen"], d["rejected"])]
        config = SFTConfig(per_device_train_batch_size=2 * args.pairs_per_batch, assistant_only_loss=False,
                           completion_only_loss=None, **common)
        trainer = SFTTrainer(model=captioner.model, args=config, train_dataset=Dataset.from_list(rows),
                             processing_class=captioner.processor, callbacks=[clock])
    else:
        from trl import DPOConfig, DPOTrainer

        rows = [{"images": [d["image"]], "prompt": user(d), "chosen": answer(d["chosen"]),
                 "rejected": answer(d["rejected"])} for d in data]
        losses = {"loss_type": ["sigmoid", "bco_pair", "sft"], "loss_weights": [0.8, 0.2, 1.0]} \
            if setup == "trl_mpo_copy" else {"loss_type": ["sigmoid"]}
        config = DPOConfig(per_device_train_batch_size=args.pairs_per_batch, beta=0.1, **losses, **common)
        trainer = DPOTrainer(model=captioner.model, ref_model=copy.deepcopy(captioner.model).eval(), args=config,
                             train_dataset=Dataset.from_list(rows), processing_class=captioner.processor,
                             callbacks=[clock])
    trainer.train()
    return [b - a for a, b in zip(clock.ends, clock.ends[1:])]


def one_run(setup: str, args) -> dict:
    import torch

    sys.path.insert(0, str(BENCH))
    from preference_step import SIZES_TINY, build, pairs

    torch.set_num_threads(args.threads)
    captioner = build(SIZES_TINY, dry_run=True)
    data = pairs(args.pairs_per_batch * (args.warmup + args.steps), SIZES_TINY["image_size"], args.words)
    times = (run_trl if setup.startswith("trl") else run_vlforge)(setup, captioner, data, args)
    step = statistics.median(times[args.warmup - 1:])  # interval i ends at step i + 1
    return {"step_s": step, "pairs_per_s": args.pairs_per_batch / step, "steps": len(times) + 1,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pairs-per-batch", type=int, default=4)
    parser.add_argument("--words", type=int, default=24)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--setups", default=",".join(SETUPS))
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/vlforge-preference-peers"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--one-run", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_run:
        print(json.dumps(one_run(args.one_run, args)))
        return
    setups = args.setups.split(",")
    rng = random.Random(0)
    rounds = []
    for _ in range(args.rounds):
        order = list(setups)
        rng.shuffle(order)
        result = {"order": order, "load_before": os.getloadavg()[0]}
        for setup in order:
            done = subprocess.run([sys.executable, __file__, "--one-run", setup, "--out", "-", "--workdir",
                                   str(args.workdir), "--pairs-per-batch", str(args.pairs_per_batch), "--words",
                                   str(args.words), "--warmup", str(args.warmup), "--steps", str(args.steps)],
                                  capture_output=True, text=True,
                                  env=dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1"))
            if done.returncode != 0:
                raise RuntimeError(f"{setup} failed:\n{done.stderr[-3000:]}")
            result[setup] = json.loads(done.stdout.strip().splitlines()[-1])
        result["load_after"] = os.getloadavg()[0]
        print(json.dumps(result), flush=True)
        rounds.append(result)

    def ratio(a: str, b: str) -> dict | None:
        if a not in setups or b not in setups:
            return None
        values = [r[b]["step_s"] / r[a]["step_s"] for r in rounds]  # a's speed over b's = b's time / a's time
        return {"median": statistics.median(values), "min": min(values), "max": max(values)}

    summary = {s: {k: statistics.median(r[s][k] for r in rounds) for k in ("step_s", "pairs_per_s", "peak_rss_mib")}
               for s in setups}
    summary["speed_vlforge_full_copy_over_trl_mpo_copy"] = ratio("vlforge_full_copy", "trl_mpo_copy")
    summary["speed_vlforge_dpo_copy_over_trl_sigmoid_copy"] = ratio("vlforge_dpo_copy", "trl_sigmoid_copy")
    summary["speed_vlforge_sft_over_trl_sft"] = ratio("vlforge_sft", "trl_sft")
    summary["step_vlforge_full_precomputed_over_vlforge_sft"] = ratio("vlforge_sft", "vlforge_full_precomputed")
    summary["step_vlforge_full_copy_over_vlforge_sft"] = ratio("vlforge_sft", "vlforge_full_copy")
    write_report(args.out, rounds, summary)


if __name__ == "__main__":
    main()
