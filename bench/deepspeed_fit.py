"""A real DeepSpeed ZeRO-2 and ZeRO-3 fit through Lightning on one CUDA GPU, then export and reload.

    python bench/deepspeed_fit.py --out /tmp/ds_bench            # on a CUDA machine (bf16 if supported)
    python bench/deepspeed_fit.py --out /tmp/ds_bench --dry-run  # any machine: build the strategies and Trainers only

For each stage it trains a small MLP regressor for --steps steps with vlforge.common.strategies.ZeroStrategy,
exports the DeepSpeed checkpoint folder with vlforge.common.checkpoint.export_checkpoint, reloads it without
Lightning and reports the largest difference to the live (gathered) weights, the final loss and the step time.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from vlforge.common.checkpoint import export_checkpoint, load_exported
from vlforge.common.strategies import ZeroStrategy


class BenchNet(nn.Module):
    """A 4-layer MLP regressor (about 4M parameters at width 1024)."""

    def __init__(self, in_features: int = 64, width: int = 1024) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(in_features, width),
            nn.GELU(),
            nn.Linear(width, width),
            nn.GELU(),
            nn.Linear(width, width),
            nn.GELU(),
            nn.Linear(width, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x).squeeze(-1)


class BenchLitModule(pl.LightningModule):
    def __init__(self, net: BenchNet, lr: float = 1e-3) -> None:
        super().__init__()
        self.net = net
        self.lr = lr
        self.losses: list[float] = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.mse_loss(self.net(x).float(), y)
        self.losses.append(loss.item())
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.lr)


def _data(num_samples: int = 4096, in_features: int = 64) -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(num_samples, in_features, generator=generator)
    y = torch.sin(x[:, :8]).sum(-1)
    return DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True, generator=generator)


def run_stage(stage: int, out: Path, steps: int, dry_run: bool) -> dict:
    bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    strategy = ZeroStrategy(
        stage=stage, bf16=bf16, reduce_bucket_size=5_000_000, allgather_bucket_size=5_000_000
    )
    run_dir = out / f"zero{stage}"
    trainer = pl.Trainer(
        accelerator="cpu" if dry_run else "cuda",
        devices=1,
        strategy=strategy,
        precision="bf16-mixed" if bf16 else "32-true",
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        default_root_dir=run_dir,
    )
    record = {"stage": stage, "bf16": bf16, "zero_optimization": strategy.config["zero_optimization"]}
    if dry_run:
        return record
    torch.manual_seed(0)
    module = BenchLitModule(BenchNet())
    start = time.perf_counter()
    trainer.fit(module, _data())
    torch.cuda.synchronize()
    record["seconds_per_step"] = (time.perf_counter() - start) / steps
    ckpt = run_dir / "last.ckpt"
    trainer.save_checkpoint(ckpt)
    (run_dir / "config.yaml").write_text(
        "model:\n  class_path: __main__.BenchLitModule\n  init_args:\n    net:\n      class_path: __main__.BenchNet\n"
        "      init_args: {in_features: 64, width: 1024}\n"
    )
    export = export_checkpoint(ckpt, run_dir / "export", submodule="net")
    reloaded = load_exported(export)
    import deepspeed

    params = list(module.net.parameters())
    with deepspeed.zero.GatheredParameters(params, enabled=stage == 3):
        live = {k: v.detach().float().cpu() for k, v in module.net.state_dict().items()}
    record["max_abs_diff_export_vs_live"] = max(
        (reloaded.state_dict()[k] - v).abs().max().item() for k, v in live.items()
    )
    record["first_loss"], record["last_loss"] = module.losses[0], module.losses[-1]
    record["export_bytes"] = (export / "model.safetensors").stat().st_size
    return record


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument(
        "--dry-run", action="store_true", help="build strategies and Trainers only (no CUDA needed)"
    )
    args = parser.parse_args()
    if not args.dry_run and not torch.cuda.is_available():
        parser.error("Lightning's DeepSpeed strategy needs CUDA; use --dry-run on this machine")
    results = [run_stage(stage, args.out, args.steps, args.dry_run) for stage in (2, 3)]
    print(json.dumps(results, indent=2))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
