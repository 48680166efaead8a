"""A real DeepSpeed ZeRO-2 and ZeRO-3 fit through Lightning on one CUDA GPU, then export and reload.

    python bench/deepspeed_fit.py --out /tmp/ds_bench --model lm1b --steps 20  # CUDA: a 0.94 B-parameter Qwen2 LM
    python bench/deepspeed_fit.py --out /tmp/ds_bench                          # CUDA: a 4 M-parameter MLP
    python bench/deepspeed_fit.py --out /tmp/ds_bench --dry-run  # CPU: tiny sizes, ZeRO strategies built only

For each stage it trains the model (``--model``: ``mlp``, a small MLP regressor; ``lm1b``, a randomly initialised
Qwen2 causal LM of 0.94 B parameters, 16 x 2048, MLP 5504, vocabulary 32,000, on random token sequences) for
--steps steps with vlforge.common.strategies.ZeroStrategy, exports the DeepSpeed checkpoint folder with
vlforge.common.checkpoint.export_checkpoint, reloads it without Lightning and reports the largest difference to the
live (gathered) weights, the final loss and the step time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path

import lightning.pytorch as pl
import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from vlforge.common.checkpoint import allow_classes, export_checkpoint, load_exported
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


LM_1B = {"hidden_size": 2048, "intermediate_size": 5504, "num_hidden_layers": 16, "num_attention_heads": 16,
         "num_key_value_heads": 16, "vocab_size": 32000, "max_position_embeddings": 2048}
LM_TINY = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
           "num_key_value_heads": 2, "vocab_size": 256, "max_position_embeddings": 128}


class BenchLM(nn.Module):
    """A randomly initialised Qwen2 causal LM (``config``: Qwen2Config fields); forward gives the mean token NLL."""

    def __init__(self, config: dict) -> None:
        super().__init__()
        from transformers import Qwen2Config, Qwen2ForCausalLM

        self.lm = Qwen2ForCausalLM(Qwen2Config(**config, tie_word_embeddings=False))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.lm(input_ids=input_ids, labels=input_ids, use_cache=False).loss


class BenchLitModule(pl.LightningModule):
    def __init__(self, net: BenchNet, lr: float = 1e-3) -> None:
        super().__init__()
        self.net = net
        self.lr = lr
        self.losses: list[float] = []

    def training_step(self, batch, batch_idx):
        if isinstance(self.net, BenchLM):
            loss = self.net(batch[0])
        else:
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


def _tokens(num_samples: int, length: int, vocab: int) -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (num_samples, length), generator=generator)
    return DataLoader(TensorDataset(ids), batch_size=8, shuffle=True, generator=generator)


def _net_config(model: str, tiny: bool) -> dict:
    if model == "lm1b":
        return {"class_path": "__main__.BenchLM", "init_args": {"config": LM_TINY if tiny else LM_1B}}
    return {"class_path": "__main__.BenchNet", "init_args": {"in_features": 64, "width": 32 if tiny else 1024}}


def run_stage(stage: int, out: Path, steps: int, dry_run: bool, model: str = "mlp") -> dict:
    """Fit, export, reload. ``dry_run`` (CPU): Lightning's DeepSpeed strategy needs CUDA, so the ZeRO strategy is
    only built and its config recorded; the fit, export and reload run under the default CPU strategy at tiny
    sizes, so everything but the DeepSpeed engine is exercised."""
    bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    strategy = ZeroStrategy(
        stage=stage, bf16=bf16, reduce_bucket_size=5_000_000, allgather_bucket_size=5_000_000
    )
    run_dir = out / f"zero{stage}"
    trainer = pl.Trainer(
        accelerator="cpu" if dry_run else "cuda",
        devices=1,
        strategy="auto" if dry_run else strategy,
        precision="bf16-mixed" if bf16 else "32-true",
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=run_dir,
    )
    record = {"stage": stage, "model": model, "bf16": bf16, "dry_run": dry_run,
              "zero_optimization": strategy.config["zero_optimization"]}
    torch.manual_seed(0)
    net_config = _net_config(model, tiny=dry_run)
    net = BenchLM(**net_config["init_args"]) if model == "lm1b" else BenchNet(**net_config["init_args"])
    record["parameters"] = sum(p.numel() for p in net.parameters())
    module = BenchLitModule(net, lr=1e-4 if model == "lm1b" else 1e-3)
    vocab = net_config["init_args"].get("config", {}).get("vocab_size", 0)
    data = _tokens(8 * steps, 64 if dry_run else 512, vocab) if model == "lm1b" else _data()
    start = time.perf_counter()
    trainer.fit(module, data)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    record["seconds_per_step"] = (time.perf_counter() - start) / steps
    ckpt = run_dir / "last.ckpt"
    trainer.save_checkpoint(ckpt)
    (run_dir / "config.yaml").write_text(
        yaml.safe_dump({"model": {"class_path": "__main__.BenchLitModule", "init_args": {"net": net_config}}})
    )
    start = time.perf_counter()
    allow_classes("__main__.")  # this script's own benchmark classes (artefact loading allows only listed modules)
    export = export_checkpoint(ckpt, run_dir / "export", run_config=run_dir / "config.yaml", submodule="net")
    reloaded = load_exported(export)
    record["export_and_reload_s"] = time.perf_counter() - start
    params = list(module.net.parameters())
    with _gathered(params, enabled=stage == 3 and not dry_run):
        live = {k: v.detach().float().cpu() for k, v in module.net.state_dict().items()}
    record["max_abs_diff_export_vs_live"] = max(
        (reloaded.state_dict()[k].float() - v).abs().max().item() for k, v in live.items()
    )
    record["first_loss"], record["last_loss"] = module.losses[0], module.losses[-1]
    record["export_bytes"] = (export / "model.safetensors").stat().st_size
    return record


def _gathered(params: list, enabled: bool):
    """ZeRO-3 partitions parameters: gather them to read the live weights (a no-op context otherwise)."""
    if not enabled:
        return contextlib.nullcontext()
    import deepspeed

    return deepspeed.zero.GatheredParameters(params, enabled=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--model", choices=("mlp", "lm1b"), default="mlp")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="CPU, tiny sizes: ZeRO strategies built only; fit, export, reload under the default strategy",
    )
    args = parser.parse_args()
    if not args.dry_run and not torch.cuda.is_available():
        parser.error("Lightning's DeepSpeed strategy needs CUDA; use --dry-run on this machine")
    results = [run_stage(stage, args.out, args.steps, args.dry_run, args.model) for stage in (2, 3)]
    print(json.dumps(results, indent=2))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
