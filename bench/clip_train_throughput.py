"""CLIP training throughput on CPU: Lightning (ContrastiveLitModule + Trainer) vs a plain PyTorch loop.

Both train the same tiny CLIP (vlm:model/clip_tiny.yaml: ViT 2x64 patch 8 on 32 px, text 2x64, joint dim 64)
from the same initial weights on the same ContrastiveDataModule loader (ShapesWorld, 50/50 alt-text / gt short,
batch 64, ``--workers`` DataLoader workers) with the same AdamW parameter groups, warm-up + cosine schedule and
InfoNCE loss. Runs are interleaved (L P P L L P ...) so that a change in machine load hits both alike.

Per run, after ``--warmup`` steps (worker start-up, allocator warm-up), ``--steps`` steps are timed:
- samples/s = trained pairs / wall time from the end of the last warm-up step to the end of the last step;
- loader wait (plain loop only, where it can be isolated) = time blocked in ``next(loader_iterator)`` as a share
  of the step time; for Lightning the share of time outside ``training_step`` hooks (fetch + Trainer bookkeeping)
  is reported instead.

    python bench/clip_train_throughput.py --repeats 3 --warmup 10 --steps 60 --workers 2
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import lightning as L
import torch

from vlforge.common.optim import adamw_warmup_cosine
from vlforge.vlm.data import ContrastiveDataModule
from vlforge.vlm.lit_contrastive import ContrastiveLitModule
from vlforge.vlm.losses import ClipLoss
from vlforge.vlm.models import ContrastiveModel, OpenClipImageTower, OpenClipTextTower

TINY_CLIP = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
MIX = [{"source": "alt_text", "weight": 0.5}, {"source": "gt", "kind": "short", "weight": 0.5}]
LR, WEIGHT_DECAY, WARMUP_LR_STEPS, BETAS = 1e-3, 0.1, 20, (0.9, 0.98)


def make_model(seed: int) -> ContrastiveModel:
    torch.manual_seed(seed)
    return ContrastiveModel(OpenClipImageTower(TINY_CLIP), OpenClipTextTower(TINY_CLIP))


def make_data(store: str, batch_size: int, workers: int) -> ContrastiveDataModule:
    return ContrastiveDataModule(store, train_captions=copy.deepcopy(MIX), image_size=32, batch_size=batch_size,
                                 num_workers=workers)


class StepClock(L.Callback):
    """Wall-clock at each batch end and time spent inside training_step (batch start to batch end)."""

    def __init__(self) -> None:
        self.ends: list[float] = []
        self.inside: list[float] = []
        self.samples: list[int] = []
        self._start = 0.0

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        now = time.perf_counter()
        self.ends.append(now)
        self.inside.append(now - self._start)
        self.samples.append(len(batch["texts"]))


def run_lightning(store: str, args: argparse.Namespace, seed: int) -> dict[str, float]:
    module = ContrastiveLitModule(make_model(seed), lr=LR, weight_decay=WEIGHT_DECAY,
                                  warmup_steps=WARMUP_LR_STEPS, betas=BETAS)
    clock = StepClock()
    trainer = L.Trainer(max_steps=args.warmup + args.steps, accelerator="cpu", devices=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=0, num_sanity_val_steps=0, callbacks=[clock],
                        default_root_dir=args.workdir)
    trainer.fit(module, make_data(store, args.batch_size, args.workers))
    w = args.warmup
    wall = clock.ends[-1] - clock.ends[w - 1]
    inside = sum(clock.inside[w:])
    return {"samples_per_s": sum(clock.samples[w:]) / wall, "step_ms": 1000 * wall / args.steps,
            "outside_step_share": 100 * (wall - inside) / wall}


def run_plain(store: str, args: argparse.Namespace, seed: int) -> dict[str, float]:
    model = make_model(seed)
    loss_fn = ClipLoss()
    total = args.warmup + args.steps
    configured = adamw_warmup_cosine(model.named_parameters(), LR, total, weight_decay=WEIGHT_DECAY,
                                     warmup_steps=WARMUP_LR_STEPS, betas=BETAS)
    optimizer, scheduler = configured["optimizer"], configured["lr_scheduler"]["scheduler"]
    data = make_data(store, args.batch_size, args.workers)
    data.text_tokenizer = model.text_tokenizer  # tokens made in the loader's workers, as under Lightning
    loader = data.train_dataloader()
    iterator = iter(loader)
    model.train()
    waits, samples, ends = [], [], []
    for _ in range(total):
        fetch = time.perf_counter()
        try:
            batch = next(iterator)
        except StopIteration:  # next epoch (persistent workers, as under Lightning)
            iterator = iter(loader)
            batch = next(iterator)
        waits.append(time.perf_counter() - fetch)
        n = len(batch["texts"])
        image_features = model.encode_image(batch["images"])
        text_features = model.encode_text(batch["tokens"])
        loss = loss_fn(image_features, text_features, model.scale())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        samples.append(n)
        ends.append(time.perf_counter())
    del iterator, loader  # stops the workers
    w = args.warmup
    wall = ends[-1] - ends[w - 1]
    return {"samples_per_s": sum(samples[w:]) / wall, "step_ms": 1000 * wall / args.steps,
            "loader_wait_share": 100 * sum(waits[w:]) / wall, "loader_wait_ms": 1000 * sum(waits[w:]) / args.steps}


def summary(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.median(values):.1f} (mean {statistics.mean(values):.1f} ± {spread:.1f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", default="/tmp/vlforge-bench/shapes3000")
    parser.add_argument("--num-images", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each, interleaved")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps at the start of each run")
    parser.add_argument("--steps", type=int, default=60, help="timed steps per run")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads of the training process")
    parser.add_argument("--workdir", default="/tmp/vlforge-bench/runs")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    if not (Path(args.store) / "data.mdb").exists():
        from vlforge.common.shapes.build import build_shapes_store

        build_shapes_store(args.store, num_images=args.num_images, seed=0, image_size=32, workers=1)
    runs: dict[str, list[dict[str, float]]] = {"lightning": [], "plain": []}
    for repeat in range(args.repeats):
        order = ("lightning", "plain") if repeat % 2 == 0 else ("plain", "lightning")
        for name in order:
            result = (run_lightning if name == "lightning" else run_plain)(args.store, args, seed=repeat)
            runs[name].append(result)
            print(json.dumps({"repeat": repeat, "loop": name, "load_avg_1m": os.getloadavg()[0],
                              **{k: round(v, 2) for k, v in result.items()}}), file=sys.stderr, flush=True)
    ratios = [p["samples_per_s"] / lt["samples_per_s"] for lt, p in zip(runs["lightning"], runs["plain"])]
    print(f"machine: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"lightning {L.__version__}, threads {args.threads}, workers {args.workers}, batch {args.batch_size}")
    print("| loop | samples/s median (mean ± std) | step ms | loader wait / outside-step share % |")
    print("|---|---|---|---|")
    for name, key in (("lightning", "outside_step_share"), ("plain", "loader_wait_share")):
        rs = runs[name]
        print(f"| {name} | {summary([r['samples_per_s'] for r in rs])} | {summary([r['step_ms'] for r in rs])} "
              f"| {summary([r[key] for r in rs])} |")
    overhead = [100 * (r - 1) for r in ratios]
    print(f"Lightning overhead per interleaved pair (plain/lightning - 1), %: "
          f"{', '.join(f'{o:.1f}' for o in overhead)}; median {statistics.median(overhead):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
