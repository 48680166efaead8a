"""Threads and DataLoader workers for the main job's stages on a shared machine (issue 15, item 5).

Two of the main job's stages (experiments/shapes/mllm_augmented.yaml), as short bounded runs of the same console
commands on a ShapesWorld store built here: the captioner SFT stage (``vlforge-captioner fit``, sft_tiny +
shapes_sft, LLaVA-small preset, short captions, batch 16, lr 5e-4) and the CLIP stage (``vlforge-vlm fit``,
clip_tiny on 32 px, alt-text, batch 64). Each setup (stage, torch threads, DataLoader workers) runs in a fresh
process, once alone and once beside one competing CPU-bound process (a Python busy loop), and rounds go round
the setups in a rotating order, each setup's two runs back to back (alternating which goes first), so every
comparison is between neighbouring runs (interleaved).

Per run: the median step time (the wall time between consecutive step ends, bench/step_clock.py) after the first
``--warmup`` steps (a run stops at ``--max-time``, Lightning's ``max_time``, if that comes first: every step is
timed when fewer are left), and the CPU seconds of the run's process tree (``RUSAGE_CHILDREN``; start-up
included). The ratio beside-a-competitor / alone per setup and round says which settings keep their speed when a
core is taken (goal: within 2x).

    python bench/stage_threads.py --rounds 2 --out bench/results/stage_threads.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_report import write_report

BENCH = Path(__file__).resolve().parent
# (stage, torch threads, DataLoader workers); the main job runs threads 2, workers 0 today
SETUPS = (("sft", 1, 0), ("sft", 2, 0), ("clip", 1, 0), ("clip", 2, 0), ("clip", 1, 2))


def stage_command(stage: str, store: Path, workers: int, steps: int, clock: Path, max_time: str) -> list[str]:
    common = ["--trainer.max_steps", str(steps), "--trainer.max_time", max_time,
              "--trainer.accelerator", "cpu", "--trainer.devices", "1",
              "--trainer.logger", "false", "--trainer.enable_checkpointing", "false",
              "--trainer.enable_progress_bar", "false", "--trainer.callbacks+=step_clock.StepClock",
              f"--trainer.callbacks.path={clock}", "--seed_everything", "0"]
    if stage == "sft":
        return [sys.executable, "-c", "from vlforge.captioner.cli import main; main()", "fit",
                "--config", "captioner:model/sft_tiny.yaml", "--config", "captioner:data/shapes_sft.yaml",
                "--model.init_args.captioner.init_args.source", "preset:llava_small", "--model.init_args.lr", "5e-4",
                "--data.init_args.store", str(store), "--data.init_args.targets", "{short: short}",
                "--data.init_args.val_split", "null", "--data.init_args.batch_size", "16",
                "--data.init_args.num_workers", str(workers), *common]
    return [sys.executable, "-c", "from vlforge.vlm.cli import main; main()", "fit",
            "--config", "vlm:model/clip_tiny.yaml", "--config", "vlm:data/shapes_alt_text.yaml",
            "--data.store", str(store), "--data.image_size", "32", "--data.batch_size", "64",
            "--data.num_workers", str(workers), "--data.val_split", "null", "--data.test_split", "null", *common]


def one_run(stage: str, threads: int, workers: int, args, run: Path) -> dict:
    run.mkdir(parents=True, exist_ok=True)
    clock = run / "clock.json"
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               TOKENIZERS_PARALLELISM="false", PYTHONPATH=f"{BENCH}:{os.environ.get('PYTHONPATH', '')}")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    command = stage_command(stage, args.workdir / "store", workers, args.steps[stage], clock, args.max_time)
    done = subprocess.run(command, env=env, cwd=run, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{stage} run failed:\n{done.stderr[-3000:]}")
    ends = json.loads(clock.read_text())["ends"]
    steps = [b - a for a, b in zip(ends, ends[1:])]
    steps = steps[args.warmup:] or steps
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {"step_s": statistics.median(steps), "cpu_s": cpu, "wall_s": wall, "timed_steps": len(steps)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--sft-steps", type=int, default=16)
    parser.add_argument("--clip-steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3, help="first steps not timed")
    parser.add_argument("--max-time", default="00:00:01:40",
                        help="Lightning max_time of each run (DD:HH:MM:SS): a run stops there with fewer steps")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/vlforge-stage-threads"))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.steps = {"sft": args.sft_steps, "clip": args.clip_steps}
    store = args.workdir / "store"
    if not store.exists():
        subprocess.run([sys.executable, "-c", "from vlforge.common.store_cli import main; main()", "shapes",
                        str(store), "--num-images", str(args.images), "--seed", "0", "--workers", "1"], check=True)
    rounds = []
    for index in range(args.rounds):
        result: dict = {"load_before": os.getloadavg()[0]}
        setups = SETUPS[index % len(SETUPS):] + SETUPS[:index % len(SETUPS)]
        for stage, threads, workers in setups:
            for competitor in ((False, True) if index % 2 == 0 else (True, False)):
                name = f"{stage}_t{threads}_w{workers}_{'loaded' if competitor else 'alone'}"
                busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if competitor else None
                try:
                    result[name] = one_run(stage, threads, workers, args, args.workdir / f"round{index}" / name)
                finally:
                    if busy is not None:
                        busy.kill()
                        busy.wait()
                print(name, json.dumps(result[name]), f"load {os.getloadavg()[0]:.1f}", flush=True)
        result["load_after"] = os.getloadavg()[0]
        rounds.append(result)
        write_report(args.out, rounds, summarize(rounds))  # after every round: a stopped run keeps what it measured


def summarize(rounds: list[dict]) -> dict:
    summary: dict = {"rounds": len(rounds)}
    for stage, threads, workers in SETUPS:
        name = f"{stage}_t{threads}_w{workers}"
        entry = {f"{kind}_{key}_median": statistics.median(r[f"{name}_{kind}"][key] for r in rounds)
                 for kind in ("alone", "loaded") for key in ("step_s", "cpu_s")}
        ratios = [r[f"{name}_loaded"]["step_s"] / r[f"{name}_alone"]["step_s"] for r in rounds]
        entry["loaded_over_alone"] = {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}
        summary[name] = entry
    return summary


if __name__ == "__main__":
    main()
