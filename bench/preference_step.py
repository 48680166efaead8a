"""Preference step time against SFT step time, with a precomputed reference (one model in memory).

A Qwen2-VL model of about 1.1 B parameters is built locally with random weights (Qwen2 LM 16 x 1536, GQA 12/2
heads, MLP 8960, the real 151,936-token vocabulary; ViT 8 x 1280 on 224 px images), bf16-mixed, and trained a few
steps under a Lightning Trainer twice from the same weights: ``CaptionerPreferenceLitModule(reference=
"precomputed")`` on batches of P pairs (2P sequences: chosen and rejected rows in one forward), and
``CaptionerSFTLitModule`` on batches of 2P examples (the same 2P sequences), so both steps push the same tokens
through the model and the ratio shows the preference loss's own cost (reference look-up, the three loss terms,
logging). Timed: the mean of the steps after the first ``--warmup``.

    python bench/preference_step.py --out pref.json            # CUDA
    python bench/preference_step.py --dry-run --out pref.json  # CPU, tiny sizes, same code path
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader

from vlforge.captioner.captioner import Captioner
from vlforge.captioner.lit_preference import CaptionerPreferenceLitModule
from vlforge.captioner.lit_sft import CaptionerSFTLitModule
from vlforge.common.presets import shapes_tokenizer
from vlforge.common.presets.qwen2_vl import build_qwen2_vl

SIZES_1B = {"image_size": 224, "patch_size": 14, "merge_size": 2, "mrope_section": (16, 24, 24),
            "vision": {"depth": 8, "embed_dim": 1280, "num_heads": 16, "mlp_ratio": 4},
            "text": {"hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 16,
                     "num_attention_heads": 12, "num_key_value_heads": 2, "max_position_embeddings": 4096}}
SIZES_TINY = {"image_size": 56, "patch_size": 14, "merge_size": 2, "mrope_section": (2, 3, 3),
              "vision": {"depth": 1, "embed_dim": 32, "num_heads": 2, "mlp_ratio": 2},
              "text": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                       "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 512}}
VOCAB = 151_936
WORDS = "a red blue green small large circle square triangle left of right above below the and".split()


def build(sizes: dict, dry_run: bool) -> Captioner:
    torch.manual_seed(0)
    model, processor = build_qwen2_vl(shapes_tokenizer(vocab_size=1024, num_images=2000, seed=0), **sizes)
    if not dry_run:
        model.resize_token_embeddings(VOCAB, mean_resizing=False)
    return Captioner.from_parts(model, processor)


def pairs(count: int, image_size: int, words: int) -> list[dict]:
    rng = np.random.default_rng(0)
    out = []
    for i in range(count):
        image = Image.fromarray(rng.integers(0, 256, (image_size, image_size, 3), dtype=np.uint8))
        chosen, rejected = (" ".join(rng.choice(WORDS, words)) for _ in range(2))
        out.append({"key": f"pair{i}", "image": image, "instruction": "Describe the image.", "chosen": chosen,
                    "rejected": rejected})
    return out


class StepTimes(L.Callback):
    def __init__(self) -> None:
        self.times: list[float] = []
        self._start = 0.0

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.times.append(time.perf_counter() - self._start)


def fit(module: L.LightningModule, data: list[dict], batch_size: int, steps: int, args) -> list[float]:
    clock = StepTimes()
    trainer = L.Trainer(max_steps=steps, accelerator="cpu" if args.dry_run else "gpu", devices=1,
                        precision="32-true" if args.dry_run else "bf16-mixed", logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[clock], default_root_dir=str(args.out.parent / "preference_step_run"))
    trainer.fit(module, DataLoader(data, batch_size=batch_size, shuffle=False, collate_fn=list))
    return clock.times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs-per-batch", type=int, default=4)
    parser.add_argument("--words", type=int, default=48, help="words per response")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per side")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--dry-run", action="store_true", help="tiny sizes on CPU, 1 + 2 steps")
    args = parser.parse_args()
    if not args.dry_run and not torch.cuda.is_available():
        parser.error("needs CUDA; use --dry-run on this machine")
    if args.dry_run:
        args.pairs_per_batch, args.words, args.warmup, args.steps = 2, 8, 1, 2
    sizes = SIZES_TINY if args.dry_run else SIZES_1B
    total = args.warmup + args.steps
    data = pairs(args.pairs_per_batch * total, sizes["image_size"], args.words)

    captioner = build(sizes, args.dry_run)
    parameters = sum(p.numel() for p in captioner.model.parameters())
    preference = CaptionerPreferenceLitModule(captioner, reference="precomputed", lr=1e-6)
    if not args.dry_run:
        preference.to("cuda")
    start = time.perf_counter()
    with torch.autocast("cuda", torch.bfloat16, enabled=not args.dry_run):
        preference.precompute_reference(DataLoader(data, batch_size=args.pairs_per_batch, collate_fn=list))
    precompute_s = time.perf_counter() - start
    preference_times = fit(preference, data, args.pairs_per_batch, total, args)
    del preference, captioner
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    sft = CaptionerSFTLitModule(build(sizes, args.dry_run), lr=1e-6)
    sft_data = [dict(d, response=r) for d in data for r in (d["chosen"], d["rejected"])]
    sft_times = fit(sft, sft_data, 2 * args.pairs_per_batch, total, args)

    preference_s = float(np.mean(preference_times[args.warmup:]))
    sft_s = float(np.mean(sft_times[args.warmup:]))
    result = {"parameters": parameters, "device": torch.cuda.get_device_name() if not args.dry_run else "cpu",
              "precision": "32-true" if args.dry_run else "bf16-mixed", "pairs_per_batch": args.pairs_per_batch,
              "sft_examples_per_batch": 2 * args.pairs_per_batch, "timed_steps": args.steps,
              "precompute_reference_s": precompute_s, "preference_step_s": preference_s, "sft_step_s": sft_s,
              "ratio_preference_over_sft": preference_s / sft_s, "goal_ratio_at_most": 1.1}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
