"""Collapse signature from an SFT captioner (MPO, appendix D): pure DPO at 10x the tiny preference lr drives the
chosen and rejected rewards both below the reference; the full loss (DPO + SFT + BCO) on the same pairs keeps the
chosen reward above it. The procedure of tests/test_outcome_collapse.py, per seed:

    python experiments/captioner/collapse_from_sft.py --seeds 0 1 2 --out docs/results/collapse_from_sft.json

Per seed: a 500-image ShapesWorld store (generator seed 9 + S; seed / pref splits), the tiny LLaVA (seeded init,
frozen vision tower) fine-tuned 80 steps on descriptive captions, then 40 preference steps at lr 5e-3 on gt
descriptive vs stored perturbed-negative pairs, once with weights (1, 0, 0) (pure DPO) and once with (0.8, 1, 0.2)
(the full loss). Reported: the mean chosen / rejected reward over the last 10 steps and whether
``train/collapse`` was ever flagged."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from vlforge.captioner.captioner import Captioner
from vlforge.captioner.datamodules import CaptionerPreferenceDataModule, CaptionerSFTDataModule
from vlforge.captioner.lit_preference import CaptionerPreferenceLitModule
from vlforge.captioner.lit_sft import CaptionerSFTLitModule
from vlforge.captioner.model_setup import FreezePolicy
from vlforge.common.presets import build_preset
from vlforge.common.shapes.build import build_shapes_store

PREFERENCE_LR = 5e-4  # the tiny preference recipe (configs/model/preference_tiny.yaml); x10 is aggressive
WEIGHTS = {"pure_dpo": (1.0, 0.0, 0.0), "full": (0.8, 1.0, 0.2)}


class RewardTrace(Callback):
    """(chosen reward, rejected reward, collapse flag) of every preference training step."""

    def __init__(self) -> None:
        self.rows: list[tuple[float, float, float]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        m = trainer.callback_metrics
        self.rows.append((float(m["train/rewards_chosen"]), float(m["train/rewards_rejected"]),
                          float(m["train/collapse"])))

    def summary(self) -> dict[str, float]:
        last = self.rows[-10:]
        return {"chosen": sum(r[0] for r in last) / len(last), "rejected": sum(r[1] for r in last) / len(last),
                "flagged": max(r[2] for r in self.rows)}


def _trainer(steps: int, root: Path, callbacks=()) -> L.Trainer:
    return L.Trainer(max_steps=steps, accelerator="cpu", logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, default_root_dir=root,
                     callbacks=list(callbacks))


def sft_start(seed: int, root: Path) -> tuple[str, str]:
    """(store, SFT checkpoint) of one seed."""
    store = str(root / "store")
    build_shapes_store(store, 500, seed=9 + seed, workers=1, split_fractions={"seed": 0.6, "pref": 0.4})
    L.seed_everything(seed)
    model, processor = build_preset("llava_tiny", seed=seed)
    module = CaptionerSFTLitModule(Captioner.from_parts(model, processor, freeze=FreezePolicy(vision_tower=True)),
                                   lr=3e-3, warmup_ratio=0.05)
    data = CaptionerSFTDataModule(store, val_split=None, targets={"descriptive": "descriptive"}, batch_size=8)
    trainer = _trainer(80, root)
    trainer.fit(module, datamodule=data)
    trainer.save_checkpoint(root / "sft.ckpt")
    return store, str(root / "sft.ckpt")


def preference(seed: int, store: str, checkpoint: str, weights: tuple[float, float, float],
               root: Path) -> dict[str, float]:
    L.seed_everything(seed)
    module = CaptionerPreferenceLitModule(Captioner(weights=checkpoint), reference="precomputed", weights=weights,
                                          lr=10 * PREFERENCE_LR, warmup_ratio=0.0, collapse_window=10)
    data = CaptionerPreferenceDataModule(store, chosen_kind="descriptive", rejected="negative", batch_size=8,
                                         train_limit=150)
    rewards = RewardTrace()
    _trainer(40, root, [rewards]).fit(module, datamodule=data)
    return rewards.summary()


def run_seed(seed: int, root: Path) -> dict[str, dict[str, float]]:
    store, checkpoint = sft_start(seed, root)
    return {name: preference(seed, store, checkpoint, weights, root) for name, weights in WEIGHTS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--out", type=Path, required=True, help="JSON of the per-seed results")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = {}
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            results[str(seed)] = run_seed(seed, Path(tmp))
        print(json.dumps({"seed": seed, **results[str(seed)]}), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": "python experiments/captioner/collapse_from_sft.py --seeds "
                                    + " ".join(map(str, args.seeds)), "results": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
