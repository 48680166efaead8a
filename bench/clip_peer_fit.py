"""CLIP on CPU: ``vlforge-vlm fit`` against ``python -m open_clip_train.main``, same model, data and settings,
interleaved pairs.

Model: vlforge's tiny CLIP (vlm:model/clip_tiny.yaml: open_clip ViT 2x64 patch 8 on 32 px, text 2x64, joint 64),
registered for open_clip as the model-config JSON ``vlforge-bench-tiny``. Data: a ShapesWorld store (32 px) and,
exported from it for open_clip with ``vlforge-store export --format tsv --source alt_text --split pool`` (PNG
files + a TSV of filepath, title), its pool split's alt-text; the vlforge side trains on the store's pool split
with the same alt-text (vlm:data/shapes_alt_text.yaml). Both: batch
64, fp32, AdamW lr 1e-3, wd 0.1, betas (0.9, 0.98), 20 warm-up steps then cosine, open_clip's training transform
(RandomResizedCrop; ``--data.augment true``), 2 DataLoader workers, 1 thread (OMP/MKL_NUM_THREADS=1), ``--epochs``
epochs, no validation, no checkpoints.

Timed: per step (open_clip: ``Batch (t)`` of a log line written every step, its meter reset at each line; vlforge:
wall time between consecutive step ends, recorded by bench/step_clock.py), excluding the first ``--warmup`` steps.
samples/s = 64 / median step time. Peak RSS: the largest ru_maxrss among each run's processes (main or worker).
Loss curves: both sides' per-step training loss, on one plot.

    python bench/clip_peer_fit.py --pairs 3 --epochs 3 --out bench/results/clip_peer_fit.json
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

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from open_clip_peer import LAUNCHER, read_log, register_config  # noqa: E402

TINY = {"embed_dim": 64,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
        "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}}
NAME = "vlforge-bench-tiny"
BATCH, WORKERS = 64, 2


def export_tsv(store_path: Path, out: Path) -> int:
    """The pool split's alt-text as open_clip's CsvDataset reads it (``vlforge-store export --format tsv``)."""
    done = subprocess.run([sys.executable, "-c", "from vlforge.common.store_cli import main; main()", "export",
                           str(store_path), "--format", "tsv", "--out", str(out / "train.tsv"), "--source", "alt_text",
                           "--split", "pool", "--json"], check=True, capture_output=True, text=True)
    return json.loads(done.stdout)["captions"]


def environment() -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false",
                PYTHONPATH=f"{BENCH}:{os.environ.get('PYTHONPATH', '')}")


def run_vlforge(args, store: Path, run: Path) -> dict:
    clock = run / "clock.json"
    command = [sys.executable, "-c", "from vlforge.vlm.cli import main; main()", "fit",
               "--config", "vlm:model/clip_tiny.yaml", "--config", "vlm:data/shapes_alt_text.yaml",
               "--data.store", str(store), "--data.augment", "true", "--data.num_workers", str(WORKERS),
               "--data.batch_size", str(BATCH), "--data.val_split", "null", "--data.test_split", "null",
               "--trainer.max_epochs", str(args.epochs), "--trainer.accelerator", "cpu", "--trainer.devices", "1",
               "--trainer.precision", "32-true", "--trainer.logger", "false", "--trainer.enable_checkpointing", "false",
               "--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(run),
               "--trainer.callbacks+=step_clock.StepClock", f"--trainer.callbacks.path={clock}",
               "--seed_everything", "0"]
    start = time.perf_counter()
    done = subprocess.run(command, env=environment(), capture_output=True, text=True, cwd=run)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"vlforge-vlm fit failed:\n{done.stderr[-3000:]}")
    steps = json.loads(clock.read_text())
    times = [b - a for a, b in zip(steps["ends"], steps["ends"][1:])]
    return {"step_s": times, "loss": steps["losses"], "wall_s": wall}


def run_open_clip(args, tsv: Path, config_dir: Path, run: Path) -> dict:
    train_args = ["--train-data", str(tsv), "--dataset-type", "csv", "--batch-size", str(BATCH), "--epochs",
                  str(args.epochs), "--workers", str(WORKERS), "--model", NAME, "--precision", "fp32", "--lr", "1e-3",
                  "--wd", "0.1", "--warmup", "20", "--beta1", "0.9", "--beta2", "0.98", "--log-every-n-steps", "1",
                  "--logs", str(run), "--name", "oc", "--report-to", "", "--save-frequency", "0",
                  "--zeroshot-frequency", "0", "--val-frequency", "0", "--seed", "0"]
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", LAUNCHER, str(config_dir), *train_args], env=environment(),
                          capture_output=True, text=True, cwd=run)
    wall = time.perf_counter() - start
    log = run / "oc" / "out.log"
    if done.returncode != 0 or not log.is_file():
        raise RuntimeError(f"open_clip_train failed:\n{done.stderr[-3000:]}")
    lines = read_log(log)
    # open_clip logs step 0 and then every step; each line's Batch (t) is that step's time
    return {"step_s": [line["step_s"] for line in lines[1:]], "loss": [line["loss"] for line in lines], "wall_s": wall}


def child_rss_run(fn, *fn_args) -> tuple[dict, float]:
    """Run ``fn`` (which starts one subprocess) in a forked helper so ru_maxrss of its children is this run's own."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            result = fn(*fn_args)
            result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            payload = json.dumps(result).encode()
        except Exception as err:  # noqa: BLE001 - reported by the parent
            payload = json.dumps({"error": str(err)}).encode()
        with os.fdopen(write, "wb") as pipe:
            pipe.write(payload)
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        result = json.loads(pipe.read())
    os.waitpid(pid, 0)
    if "error" in result:
        raise RuntimeError(result["error"])
    return result


def plot(pairs: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    for i, pair in enumerate(pairs):
        axis.plot(pair["vlforge"]["loss"], color="tab:blue", alpha=0.6, label="vlforge-vlm fit" if i == 0 else None)
        axis.plot(pair["open_clip"]["loss"], color="tab:orange", alpha=0.6,
                  label="open_clip_train.main" if i == 0 else None)
    axis.set_xlabel("step")
    axis.set_ylabel("training loss (InfoNCE, batch 64)")
    axis.set_title("tiny CLIP on ShapesWorld alt-text, same settings")
    axis.legend()
    figure.tight_layout()
    figure.savefig(out, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=4000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=10, help="first steps not timed")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/vlforge-clip-peer"))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    store, export = args.workdir / "store", args.workdir / "open_clip_data"
    if not store.exists():
        subprocess.run([sys.executable, "-c", "from vlforge.common.store_cli import main; main()", "shapes",
                        str(store), "--num-images", str(args.images), "--seed", "0", "--image-size", "32",
                        "--workers", "1"], check=True)
    rows = export_tsv(store, export)
    config_dir = register_config(args.workdir / "model_configs", NAME, TINY)
    pairs = []
    for index in range(args.pairs):
        order = ("vlforge", "open_clip") if index % 2 == 0 else ("open_clip", "vlforge")
        pair = {"order": order, "load_before": os.getloadavg()[0]}
        for side in order:
            run = args.workdir / f"pair{index}_{side}"
            run.mkdir(parents=True, exist_ok=True)
            if side == "vlforge":
                pair[side] = child_rss_run(run_vlforge, args, store, run)
            else:
                pair[side] = child_rss_run(run_open_clip, args, export / "train.tsv", config_dir, run)
            steps = pair[side]["step_s"][args.warmup:]
            pair[side]["median_step_s"] = statistics.median(steps)
            pair[side]["samples_per_s"] = BATCH / pair[side]["median_step_s"]
            pair[side]["steps"] = len(pair[side]["loss"])
        pair["load_after"] = os.getloadavg()[0]
        pair["ratio_vlforge_over_open_clip"] = pair["vlforge"]["samples_per_s"] / pair["open_clip"]["samples_per_s"]
        print(json.dumps({k: v for k, v in pair.items() if k not in ("vlforge", "open_clip")}
                         | {s: {k: pair[s][k] for k in ("samples_per_s", "peak_rss_mib", "steps", "wall_s")}
                            for s in ("vlforge", "open_clip")}), flush=True)
        pairs.append(pair)
    ratios = [p["ratio_vlforge_over_open_clip"] for p in pairs]
    report = {"command": " ".join(sys.argv), "training_images": rows, "batch": BATCH, "workers": WORKERS,
              "threads": 1, "epochs": args.epochs, "pairs": pairs,
              "summary": {"ratio_median": statistics.median(ratios), "ratio_min": min(ratios),
                          "ratio_max": max(ratios),
                          **{f"{s}_{k}_median": statistics.median(p[s][k] for p in pairs)
                             for s in ("vlforge", "open_clip") for k in ("samples_per_s", "peak_rss_mib")},
                          **{f"{s}_final_loss_median": statistics.median(
                              statistics.fmean(p[s]["loss"][-10:]) for p in pairs) for s in ("vlforge", "open_clip")},
                          "load_min": min(min(p["load_before"], p["load_after"]) for p in pairs),
                          "load_max": max(max(p["load_before"], p["load_after"]) for p in pairs)}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    plot(pairs, args.out.with_suffix(".png"))
    print(json.dumps(report["summary"], indent=1))


if __name__ == "__main__":
    main()
