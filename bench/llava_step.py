"""The tiny LLaVA stage's training step under Lightning against a plain PyTorch loop, and the SFT collator's cost.

The model is the instruction stage of vlm:mllm/instruct_tiny.yaml (random-init CLIP 2x64 on 32 px, 16 image tokens,
Llama 2x64; projector + LLM train), the data ShapesWorld QA conversations (`vlforge-vlm shapes-llava-json`, 5 turns
each) of a 300-image store. Both loops run the same steps on the same pre-collated batches from the same initial
weights with the module's own optimizer and schedule (LlavaStageLitModule.configure_optimizers): Lightning's
Trainer.fit (no logger, checkpointing or progress bar) against forward / backward / step / zero_grad by hand.
Rounds alternate the order; per round the median step time after ``--warmup`` steps and the ratio Lightning /
plain. The collator: seconds per sample to collate a batch (image processing + tokenization + padding) over the
step's seconds per sample, measured in the same rounds. One torch thread.

    python bench/llava_step.py --rounds 5 --out bench/results/llava_step.json
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
from bench_report import write_report
from torch.utils.data import DataLoader

from vlforge.common.lm.collate import SFTCollator
from vlforge.common.shapes.build import build_shapes_store
from vlforge.common.store import CaptionStore
from vlforge.vlm.mllm.instruct_data import LlavaConversations
from vlforge.vlm.mllm.lit_stage import LlavaStageLitModule
from vlforge.vlm.mllm.shapes_instruct import shapes_llava_rows
from vlforge.vlm.mllm.stage_model import LlavaStageModel

TINY_VISION = {"image_size": 32, "patch_size": 8, "hidden_size": 64, "intermediate_size": 128,
               "num_hidden_layers": 2, "num_attention_heads": 4}


class StepTimes(L.Callback):
    def __init__(self) -> None:
        self.ends: list[float] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.ends.append(time.perf_counter())


def examples(workdir: Path, count: int) -> list[dict]:
    import json

    store_path = workdir / "store"
    if not store_path.exists():
        build_shapes_store(store_path, num_images=300, seed=0, image_size=32, workers=1)
    out = workdir / "instruct.json"
    with CaptionStore(store_path) as store:
        out.write_text(json.dumps(shapes_llava_rows(store, "pool", out, limit=count)))
    dataset = LlavaConversations(str(out))
    return [dataset[i] for i in range(min(count, len(dataset)))]


def module() -> LlavaStageLitModule:
    model = LlavaStageModel("clip", "preset:llama_tiny", vision_config=TINY_VISION, vision_feature_layer=-1)
    return LlavaStageLitModule(model, lr=1e-3, max_length=512)


def lightning_steps(template: LlavaStageLitModule, batches: list[dict]) -> list[float]:
    lit = copy.deepcopy(template)
    clock = StepTimes()
    trainer = L.Trainer(max_steps=len(batches), logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[clock], accelerator="cpu", devices=1)
    start = time.perf_counter()
    trainer.fit(lit, DataLoader(batches, batch_size=None))
    ends = [start, *clock.ends]
    return [b - a for a, b in zip(ends, ends[1:])]


def plain_steps(template: LlavaStageLitModule, batches: list[dict]) -> list[float]:
    lit = copy.deepcopy(template)
    lit.trainer = type("T", (), {"estimated_stepping_batches": len(batches)})()  # what configure_optimizers reads
    config = lit.configure_optimizers()
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    lit.train()
    times = []
    for batch in batches:
        start = time.perf_counter()
        loss = lit.response_nll(batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    L.seed_everything(0, verbose=False)
    template = module()
    with tempfile.TemporaryDirectory() as tmp:
        data = examples(Path(tmp), args.batch_size * args.steps)
        collator = SFTCollator(template.processor, max_length=512)
        groups = [data[i:i + args.batch_size] for i in range(0, len(data) - args.batch_size + 1, args.batch_size)]
        batches = [collator(group) for group in groups][:args.steps]
        rounds = []
        for index in range(args.rounds):
            result = {"load_before": os.getloadavg()[0]}
            for name in (("lightning", "plain") if index % 2 == 0 else ("plain", "lightning")):
                steps = (lightning_steps if name == "lightning" else plain_steps)(template, batches)
                result[f"{name}_step_s"] = statistics.median(steps[args.warmup:])
            start = time.perf_counter()
            for group in groups[:5]:
                collator(group)
            result["collate_s_per_sample"] = (time.perf_counter() - start) / (5 * args.batch_size)
            result["load_after"] = os.getloadavg()[0]
            result["lightning_over_plain"] = result["lightning_step_s"] / result["plain_step_s"]
            result["collate_over_step_per_sample"] = result["collate_s_per_sample"] / (
                result["plain_step_s"] / args.batch_size)
            print(result, flush=True)
            rounds.append(result)
    summary = {"batch_size": args.batch_size, "image_tokens": 16, "tokens_per_sequence_mean": float(
        statistics.fmean(int(b["attention_mask"].sum()) / b["input_ids"].shape[0] for b in batches))}
    for key in ("lightning_step_s", "plain_step_s", "collate_s_per_sample", "lightning_over_plain",
                "collate_over_step_per_sample"):
        values = [r[key] for r in rounds]
        summary[key] = {"median": statistics.median(values), "min": min(values), "max": max(values)}
    write_report(args.out, rounds, summary)


if __name__ == "__main__":
    main()
