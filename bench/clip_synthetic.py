"""CLIP training speed on synthetic data: vlforge (ContrastiveLitModule under a Lightning Trainer) against open_clip's
own trainer (``open_clip_train.main --dataset-type synthetic``), same model, batch, precision, optimiser and
schedule, one after the other in one run; samples/s and model FLOPs utilisation (MFU).

Both sides train 2N steps; the timed window is the last N - 1 (open_clip: the mean ``Batch (t)`` of its last log
line, meters reset at each log line every N steps; vlforge: wall time between the ends of steps N and 2N - 1,
CUDA synchronised there). Data: open_clip's ``SyntheticDataset`` (one blank image through the training transform
in the DataLoader workers, caption "Dummy caption") on both sides; vlforge tokenises in the training process, as
its data modules do. FLOPs per sample are counted with ``torch.utils.flop_counter`` on one forward + backward.

    python bench/clip_synthetic.py --model ViT-B-16 --batch-size 256 --steps 30 --out clip.json   # CUDA, bf16
    python bench/clip_synthetic.py --dry-run --out clip.json                                      # CPU, tiny
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import lightning as L
import open_clip
import torch
from open_clip_train.data import SyntheticDataset
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from open_clip_peer import read_log, register_config, run_open_clip  # noqa: E402

from vlforge.vlm.lit_contrastive import ContrastiveLitModule  # noqa: E402
from vlforge.vlm.models import ContrastiveModel, OpenClipImageTower, OpenClipTextTower  # noqa: E402

TINY = {"embed_dim": 64,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
        "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}}
TINY_NAME = "vlforge-bench-tiny"
# dense bf16 tensor-core peak per GPU (vendor data sheets, SXM parts)
PEAK_BF16_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12}
LR, WEIGHT_DECAY, BETAS = 1e-3, 0.1, (0.9, 0.98)


def peak_flops(device: str) -> float | None:
    if device != "cuda":
        return None
    name = torch.cuda.get_device_name()
    return next((v for k, v in PEAK_BF16_FLOPS.items() if k in name), None)


def flops_per_sample(model_name: str, device: str) -> float:
    model = open_clip.create_model(model_name).to(device)
    size = model.visual.image_size
    size = size[0] if isinstance(size, tuple) else size
    batch = 4
    images = torch.randn(batch, 3, size, size, device=device)
    texts = open_clip.get_tokenizer(model_name)(["Dummy caption"] * batch).to(device)
    with FlopCounterMode(display=False) as counter:
        image_features, text_features, scale = model(images, texts)[:3]
        (scale * image_features @ text_features.T).logsumexp(-1).mean().backward()
    return counter.get_total_flops() / batch


class WindowClock(L.Callback):
    """Wall-clock at the end of two given steps (CUDA synchronised there) and the loss of every step."""

    def __init__(self, first: int, last: int) -> None:
        self.first, self.last = first, last
        self.marks: dict[int, float] = {}
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if batch_idx in (self.first, self.last):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.marks[batch_idx] = time.perf_counter()
            self.losses.append(float(outputs["loss"]))


def collate(items: list) -> dict:
    """A ContrastiveLitModule batch; ``tokens``: the items' caption tokens, made in the workers (as open_clip's)."""
    images = torch.stack([image for image, _ in items])
    return {"images": images, "texts": ["Dummy caption"] * len(items), "negatives": [], "skipped": {},
            "tokens": {"input_ids": torch.stack([tokens for _, tokens in items])}}


def run_vlforge(args: argparse.Namespace, model_name: str) -> dict:
    torch.manual_seed(0)
    model = ContrastiveModel(OpenClipImageTower(model_name), OpenClipTextTower(model_name))
    size = model.image_tower.image_size
    transform = open_clip.image_transform(size, is_train=True)
    dataset = SyntheticDataset(transform, (size, size), dataset_size=args.batch_size * 2 * args.steps,
                               tokenizer=open_clip.get_tokenizer(model_name))
    loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, num_workers=args.workers,
                        pin_memory=args.device == "cuda", drop_last=True, collate_fn=collate,
                        persistent_workers=args.workers > 0)
    module = ContrastiveLitModule(model, learning_rate=LR, weight_decay=WEIGHT_DECAY, warmup_steps=args.steps,
                                  betas=BETAS)
    clock = WindowClock(args.steps, 2 * args.steps - 1)
    trainer = L.Trainer(max_steps=2 * args.steps, accelerator="gpu" if args.device == "cuda" else "cpu", devices=1,
                        precision="bf16-mixed" if args.bf16 else "32-true", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        limit_val_batches=0, callbacks=[clock], default_root_dir=args.workdir / "vlforge")
    trainer.fit(module, loader)
    step_s = (clock.marks[clock.last] - clock.marks[clock.first]) / (clock.last - clock.first)
    return {"step_s": step_s, "samples_per_s": args.batch_size / step_s, "last_loss": clock.losses[-1]}


def run_peer(args: argparse.Namespace, model_name: str, config_dir: Path) -> dict:
    train_args = ["--dataset-type", "synthetic", "--train-num-samples", str(args.batch_size * 2 * args.steps),
                  "--batch-size", str(args.batch_size), "--epochs", "1", "--workers", str(args.workers),
                  "--model", model_name, "--precision", "amp_bf16" if args.bf16 else "fp32", "--lr", str(LR),
                  "--wd", str(WEIGHT_DECAY), "--warmup", str(args.steps), "--beta1", str(BETAS[0]),
                  "--beta2", str(BETAS[1]), "--log-every-n-steps", str(args.steps)]
    log = run_open_clip(config_dir, train_args, args.workdir / "open_clip", f"run{time.time_ns()}",
                        threads=torch.get_num_threads())
    last = read_log(log)[-1]
    return {"step_s": last["step_s"], "samples_per_s": args.batch_size / last["step_s"], "last_loss": last["loss"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="ViT-B-16")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=30, help="N: 2N steps are run, the last N - 1 timed")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/vlforge-clip-synthetic"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--dry-run", action="store_true", help="tiny CLIP on CPU, fp32, batch 8, 2 x 3 steps")
    args = parser.parse_args()
    args.device = "cpu" if args.dry_run else "cuda"
    if not args.dry_run and not torch.cuda.is_available():
        parser.error("needs CUDA; use --dry-run on this machine")
    if args.dry_run:
        args.model, args.batch_size, args.steps, args.workers = TINY_NAME, 8, 3, 0
    args.bf16 = not args.dry_run
    config_dir = register_config(args.workdir / "model_configs", TINY_NAME, TINY)
    open_clip.add_model_config(config_dir)
    peak = peak_flops(args.device)
    flops = flops_per_sample(args.model, args.device)
    result = {"model": args.model, "batch_size": args.batch_size, "timed_steps": args.steps - 1,
              "precision": "bf16-mixed" if args.bf16 else "fp32", "device": torch.cuda.get_device_name()
              if args.device == "cuda" else "cpu", "flops_per_sample": flops, "peak_flops": peak,
              "open_clip": run_peer(args, args.model, config_dir), "vlforge": run_vlforge(args, args.model)}
    for side in ("open_clip", "vlforge"):
        result[side]["mfu"] = result[side]["samples_per_s"] * flops / peak if peak else None
    result["ratio_vlforge_over_open_clip"] = result["vlforge"]["samples_per_s"] / result["open_clip"]["samples_per_s"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
