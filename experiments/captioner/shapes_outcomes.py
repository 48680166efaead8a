"""ShapesWorld learning outcomes of the captioner (issue 5, "Measurable"); figures go to docs/results.md. The
grounding outcome itself (SFT on a pre-trained tower, recipe chosen on val) is a plan now:
experiments/captioner/plans/grounding.yaml (experiments/run.py), and so are the earlier store's SFT runs from scratch
and on the per-patch tower (experiments/captioner/plans/earlier_store.yaml) and the collapse signature from a tiny SFT
model (experiments/captioner/plans/collapse.yaml). What remains here needs what the consoles do not offer: the SFT on
a CLIP tower trained in the same job (a preset naming another step's export), the preference / collapse studies on the
SFT model's own CHAIR-scored samples and the formats study over another experiment's captioners.

    python experiments/captioner/shapes_outcomes.py sft --seed 0 --clip-tower --freeze-vision --out runs/outcomes/s0
    python experiments/captioner/shapes_outcomes.py preference --seed 0 --out runs/outcomes/s0 \
        [--checkpoint runs/captioner_earlier_store/seed0/dense_patch/fit/version_0/checkpoints/step900.ckpt]
    python experiments/captioner/shapes_outcomes.py collapse --seed 0 --out runs/outcomes/s0
    python experiments/captioner/shapes_outcomes.py formats --experiment runs/mllm_augmented/seed0 \
        --out runs/outcomes/formats

- ``sft``: the llava_small preset fine-tuned on the seed split's ground-truth dense captions (5,041 images of a
  6,000-image store), checkpoints along the way, each evaluated greedily on the held-out test split (CHAIR_i,
  CHAIR_s, colour-attribute accuracy, length): the learning curve. CPU seconds of training are reported.
  ``--clip-tower`` first trains a CLIP on the same seed split with vlforge-vlm (its ViT shaped like llava_small's
  vision tower), exports the ViT (``hf-vision``) and starts the captioner's vision tower from it, as LLaVA starts
  from a CLIP ViT; ``--freeze-vision`` keeps the vision tower frozen during SFT.
- ``preference``: from the SFT checkpoint (``--checkpoint``, default the last of ``--out``'s ``sft``), K sampled
  captions per pref-split image are scored against the scene graph; the hallucinating ones (CHAIR_i > 0) go into
  the store (source ``sft_s<seed>``) and the worst one per image is the rejected caption, the gt dense caption the
  chosen one (the paper's keep-the-worst selection). Preference training with the full loss; test-split evaluation
  before and after.
- ``collapse``: the same pairs, pure DPO at lr x 10 vs the full loss at lr x 10; the chosen and rejected rewards
  per step.
- ``formats``: the three captioners of different architecture and format that the MLLM-augmented experiment
  trained (``--experiment runs/<name>/seed<S>``), each captioning that store's test split unsheared; length,
  vocabulary and word statistics plus CHAIR / colour accuracy per captioner.

Every step writes JSON into ``--out``. One torch thread unless ``--threads`` (the machine's 2 cores are shared).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import time
from pathlib import Path

import lightning as L
import torch
import yaml
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from vlforge.captioner.captioner import Captioner
from vlforge.captioner.data import REJECTED_MODES
from vlforge.captioner.datamodules import CaptionerPreferenceDataModule, CaptionerSFTDataModule
from vlforge.captioner.evaluation import evaluate_captioner, score_captions
from vlforge.captioner.formats import load_format
from vlforge.captioner.generation import generate_captions
from vlforge.captioner.lit_preference import CaptionerPreferenceLitModule
from vlforge.captioner.lit_sft import CaptionerSFTLitModule
from vlforge.common.lm.policy import FreezePolicy
from vlforge.common.metrics.caption_stats import caption_lengths, length_stats, word_frequencies
from vlforge.common.presets import build_preset
from vlforge.common.presets.registry import load_preset_config
from vlforge.common.records import Caption
from vlforge.common.shapes.build import build_shapes_store
from vlforge.common.store import CaptionDataset, CaptionStore
from vlforge.vlm.data import ContrastiveDataModule
from vlforge.vlm.hf_vision_export import export_hf_vision
from vlforge.vlm.lit_contrastive import ContrastiveLitModule
from vlforge.vlm.losses import ClipLoss
from vlforge.vlm.models import ContrastiveModel, OpenClipImageTower, OpenClipTextTower

STORE_IMAGES, STORE_SEED = 6000, 0
SPLITS = {"seed": 0.84, "pref": 0.08, "test": 0.08}
PRESET = "preset:llava_small"
SFT = {"steps": 900, "lr": 5e-4, "batch_size": 16, "warmup_ratio": 0.03, "checkpoint_every": 150}
EVAL = {"limit": 200, "max_new_tokens": 160, "batch_size": 25}
PREFERENCE = {"samples": 2, "temperature": 1.0, "lr": 2e-4, "steps": 60, "batch_size": 8, "train_vision": False}
COLLAPSE_STEPS = 40
# --clip-tower: a CLIP whose ViT has llava_small's vision shape (3 x 128, patch 8, 64 px, quick GELU), trained on the
# seed split's gt captions of all three kinds
CLIP_TOWER = {"steps": 1000, "lr": 1e-3, "batch_size": 64, "warmup_steps": 50, "model": {
    "embed_dim": 64, "quick_gelu": True,
    "vision_cfg": {"image_size": 64, "layers": 3, "width": 128, "patch_size": 8, "head_width": 32, "mlp_ratio": 2.0},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2, "mlp_ratio": 2.0}}}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def store_path(out: Path) -> str:
    """The shared store of all steps and seeds, built on first use beside the seed folders."""
    path = out.parent / "store"
    if not (path / "data.mdb").exists():
        build_shapes_store(path, STORE_IMAGES, seed=STORE_SEED, workers=1, split_fractions=SPLITS)
    return str(path)


def write(out: Path, name: str, data: dict) -> None:
    (out / name).write_text(json.dumps(data, indent=1))
    print(name, json.dumps(data if len(json.dumps(data)) < 2000 else {k: data[k] for k in list(data)[:6]}))


def evaluate(captioner: Captioner, store: str, fmt: str = "dense") -> dict:
    tokens = EVAL["max_new_tokens"] if fmt == "dense" else 60
    return evaluate_captioner(captioner, store, split="test", caption_format=fmt, limit=EVAL["limit"],
                              decoding={"max_new_tokens": tokens}, batch_size=EVAL["batch_size"]).summary()


def trainer(out: Path, steps: int, callbacks: list) -> L.Trainer:
    return L.Trainer(max_steps=steps, accelerator="cpu", logger=False, enable_progress_bar=False,
                     enable_model_summary=False, default_root_dir=out, callbacks=callbacks,
                     enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks))


def preset_with_vision(out: Path, folder: Path, description: str) -> str:
    """A llava_small preset YAML in ``out`` whose vision tower starts from the CLIP vision folder ``folder``."""
    config = load_preset_config(PRESET.removeprefix("preset:"))
    config["model"] = {k: v for k, v in config["model"].items() if k not in ("vision", "image_size", "patch_size")}
    config["model"]["vision_from"] = str(folder.resolve())
    config["description"] = description
    preset = out / "llava_small_vision_from.yaml"
    preset.write_text(yaml.safe_dump(config, sort_keys=False))
    return f"preset:{preset}"


def clip_tower_preset(out: Path, seed: int, store: str) -> tuple[str, dict]:
    """Train ``CLIP_TOWER`` on the seed split, export its ViT and write a llava_small preset starting from it."""
    L.seed_everything(seed)
    model = ContrastiveModel(OpenClipImageTower(CLIP_TOWER["model"]), OpenClipTextTower(CLIP_TOWER["model"]))
    module = ContrastiveLitModule(model, ClipLoss(), lr=CLIP_TOWER["lr"],
                                  warmup_steps=CLIP_TOWER["warmup_steps"])
    data = ContrastiveDataModule(store, train_captions=[{"source": "gt", "kind": kind, "weight": 1.0}
                                                        for kind in ("short", "descriptive", "dense")],
                                 image_size=64, batch_size=CLIP_TOWER["batch_size"], train_split="seed",
                                 val_split=None)
    start_cpu = cpu_seconds()
    trainer(out, CLIP_TOWER["steps"], []).fit(module, datamodule=data)
    folder = export_hf_vision(model, out / "clip_vision", CLIP_TOWER["model"])
    preset = preset_with_vision(out, folder, "llava_small with the vision tower of a CLIP trained on the seed split")
    return preset, {k: v for k, v in CLIP_TOWER.items() if k != "model"} | {"train_cpu_s": cpu_seconds() - start_cpu}


def sft(out: Path, seed: int, fmt: str = "dense", steps: int | None = None, store: str | None = None,
        clip_tower: bool = False, train_vision: bool = True) -> dict:
    store = store or store_path(out)
    steps = steps or SFT["steps"]
    preset, clip = PRESET, None
    if clip_tower:
        preset, clip = clip_tower_preset(out, seed, store)
    L.seed_everything(seed)
    model, processor = build_preset(preset.removeprefix("preset:"), seed=seed)  # the seed varies the init too
    captioner = Captioner.from_parts(model, processor, freeze=FreezePolicy(vision_tower=train_vision,
                                                                          projector=True, llm=True))
    module = CaptionerSFTLitModule(captioner, lr=SFT["lr"], warmup_ratio=SFT["warmup_ratio"])
    data = CaptionerSFTDataModule(store, val_split=None, targets={fmt: fmt}, batch_size=SFT["batch_size"])
    every = SFT["checkpoint_every"]
    checkpoints = ModelCheckpoint(dirpath=out / "sft", filename="step{step}", every_n_train_steps=every,
                                  save_top_k=-1, auto_insert_metric_name=False)
    start_cpu, start = cpu_seconds(), time.time()
    trainer(out, steps, [checkpoints]).fit(module, datamodule=data)
    result = {"preset": preset, "clip_tower": clip, "train_vision": train_vision, "seed": seed,
              "recipe": SFT | {"steps": steps}, "format": fmt,
              "train_cpu_s": cpu_seconds() - start_cpu, "train_wall_s": time.time() - start,
              "train_images": len(data.train_set), "curve": []}
    for path in sorted((out / "sft").glob("step*.ckpt"), key=lambda p: int(p.stem[4:])):
        scores = evaluate(Captioner(source=preset, weights=str(path)), store, fmt)
        result["curve"].append({"step": int(path.stem[4:]), **scores})
        print(result["curve"][-1], flush=True)
    return result


def final_checkpoint(out: Path, checkpoint: Path | None = None) -> str:
    """``checkpoint`` (e.g. a plan's SFT step900.ckpt), or the last SFT checkpoint of the run folder ``out``."""
    if checkpoint is not None:
        return str(checkpoint)
    return str(max((out / "sft").glob("step*.ckpt"), key=lambda p: int(p.stem[4:])))


def own_source(out: Path, fmt: str, seed: int) -> str:
    """The store source of one run folder's own SFT samples (a folder per SFT model, so runs never mix)."""
    return f"sft_{fmt}_s{seed}" if out.name == f"{fmt}_s{seed}" else f"sft_{fmt}_s{seed}_{out.name}"


def own_worst_captions(out: Path, seed: int, store: str, checkpoint: str, fmt: str) -> tuple[str, dict]:
    """Sample K captions per pref image from the SFT model; store the hallucinating ones with their scores.
    Done once per run folder: a second preference run (another loss, a control) reuses the stored samples."""
    name = own_source(out, fmt, seed)
    done = out / f"{name}.json"
    if done.exists():
        return name, json.loads(done.read_text())
    captioner = Captioner(source=PRESET, weights=checkpoint)
    dataset = CaptionDataset(store, split="pref")
    items = [dataset[i] for i in range(len(dataset))]
    images, records = [i for i, _ in items], [r for _, r in items]
    graphs = [r.meta["scene_graph"] for r in records]
    decoding = {"do_sample": True, "temperature": PREFERENCE["temperature"], "max_new_tokens": EVAL["max_new_tokens"]}
    by_id: dict[str, list[Caption]] = {}
    chair_all = []
    for k in range(PREFERENCE["samples"]):
        torch.manual_seed(1000 * seed + k)
        texts = generate_captions(captioner, None, images, load_format(fmt).prompt(), decoding=decoding,
                                  batch_size=EVAL["batch_size"])
        for text, record, graph in zip(texts, records, graphs, strict=True):
            chair_i = score_captions([text], [graph]).chair_i
            chair_all.append(chair_i)
            if chair_i > 0:
                by_id.setdefault(record.image_id, []).append(Caption(
                    text=text, source=name, kind=fmt, scores={"chair_i": chair_i},
                    provenance={"model": PRESET, "checkpoint": checkpoint, "decoding": decoding, "sample": k}))
    store_rw = CaptionStore(store, readonly=False)
    try:
        store_rw.append_captions(by_id)
    finally:
        store_rw.close()
    sampling = {"sampled": len(chair_all), "images_with_hallucination": len(by_id), "images": len(records),
                "mean_sample_chair_i": sum(chair_all) / len(chair_all), "checkpoint": checkpoint}
    done.write_text(json.dumps(sampling))
    return name, sampling


class RewardTrace(Callback):
    def __init__(self) -> None:
        self.rows: list[dict] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        metrics = trainer.callback_metrics
        self.rows.append({k: round(float(metrics[f"train/{k}"]), 4)
                          for k in ("rewards_chosen", "rewards_rejected", "rewards_accuracy", "collapse", "delta")})


def preference_run(out: Path, seed: int, store: str, checkpoint: str, source: str, fmt: str, weights: tuple,
                   lr: float, steps: int) -> tuple[CaptionerPreferenceLitModule, list[dict]]:
    L.seed_everything(seed)
    captioner = Captioner(source=PRESET, weights=checkpoint,
                          freeze=FreezePolicy(vision_tower=PREFERENCE["train_vision"], projector=True, llm=True))
    module = CaptionerPreferenceLitModule(captioner, reference="precomputed", weights=weights, lr=lr,
                                          warmup_ratio=0.1, collapse_window=10)
    data = CaptionerPreferenceDataModule(store, chosen_kind=fmt, rejected=source if source in REJECTED_MODES
                                         else f"source:{source}",
                                         batch_size=PREFERENCE["batch_size"], seed=seed)
    trace = RewardTrace()
    trainer(out, steps, [trace]).fit(module, datamodule=data)
    return module, trace.rows


def preference(out: Path, seed: int, fmt: str, weights: tuple[float, float, float] = (0.8, 1.0, 0.2),
               rejected: str = "own", checkpoint: Path | None = None) -> dict:
    """``rejected``: "own" (the SFT model's worst sample per image, the paper's selection), or a
    PreferencePairDataset mode: "hallucinated" (the gt caption with objects swapped for absent ones) or
    "negative" (the store's ARO-style perturbations of the gt caption)."""
    store, checkpoint = store_path(out), final_checkpoint(out, checkpoint)
    if rejected == "own":
        source, sampling = own_worst_captions(out, seed, store, checkpoint, fmt)
    else:
        source, sampling = rejected, {}
    before = evaluate(Captioner(source=PRESET, weights=checkpoint), store, fmt)
    start = cpu_seconds()
    module, rows = preference_run(out, seed, store, checkpoint, source, fmt, weights, PREFERENCE["lr"],
                                  PREFERENCE["steps"])
    cpu = cpu_seconds() - start
    after = evaluate(Captioner.from_parts(module.model, module.processor), store, fmt)
    return {"seed": seed, "format": fmt, "weights": weights, "rejected": rejected, "eval": EVAL,
            "recipe": PREFERENCE, "sampling": sampling,
            "sft": before, "preference": after, "train_cpu_s": cpu, "last_rewards": rows[-10:]}


def collapse(out: Path, seed: int, fmt: str, checkpoint: Path | None = None) -> dict:
    store, checkpoint = store_path(out), final_checkpoint(out, checkpoint)
    result = {"seed": seed, "lr": 10 * PREFERENCE["lr"], "steps": COLLAPSE_STEPS}
    for name, weights in (("pure_dpo", (1.0, 0.0, 0.0)), ("full", (0.8, 1.0, 0.2))):
        _, rows = preference_run(out, seed, store, checkpoint, own_source(out, fmt, seed), fmt, weights,
                                 10 * PREFERENCE["lr"], COLLAPSE_STEPS)
        last = rows[-10:]
        result[name] = {"chosen_last10": sum(r["rewards_chosen"] for r in last) / len(last),
                        "rejected_last10": sum(r["rewards_rejected"] for r in last) / len(last),
                        "collapse_flagged_steps": sum(r["collapse"] for r in rows), "trace": rows}
    return result


def formats(experiment: Path) -> dict:
    """The K captioners the MLLM-augmented experiment trained (``experiment`` = runs/<name>/seed<S>), each
    captioning the first test images of that experiment's store unsheared, greedy: length, vocabulary and top
    words per captioner, and their grounding (CHAIR, colour accuracy)."""
    store = str(experiment / "world" / "store")
    dataset = CaptionDataset(store, split="test")
    items = [dataset[i] for i in range(min(EVAL["limit"], len(dataset)))]
    images, graphs = [i for i, _ in items], [r.meta["scene_graph"] for _, r in items]
    texts, grounding = {}, {}
    for folder in sorted(experiment.glob("caption_*")):
        name, spec = folder.name.removeprefix("caption_"), json.loads((folder / "spec.json").read_text())
        if not (experiment / f"sft_{name}").is_dir():  # another captioner's weights (an ablation's long decoding)
            continue
        captioner = Captioner(source=spec["source"], weights=spec["checkpoint"])
        fmt = spec["format"]
        tokens = EVAL["max_new_tokens"] if fmt == "dense" else 60
        texts[name] = generate_captions(captioner, None, images, load_format(fmt).prompt(),
                                        decoding={"do_sample": False, "max_new_tokens": tokens},
                                        batch_size=EVAL["batch_size"])
        grounding[name] = score_captions(texts[name], graphs).summary()
    vocabulary = {name: len({w for t in ts for w in t.lower().split()}) for name, ts in texts.items()}
    return {"experiment": str(experiment), "images": len(images), "lengths": length_stats(caption_lengths(texts)),
            "vocabulary": vocabulary, "words": word_frequencies(texts, top_k=10), "grounding": grounding,
            "examples": {name: t[:2] for name, t in texts.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=("sft", "preference", "collapse", "formats"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--format", default="dense", choices=("short", "descriptive", "dense"),
                        help="sft / preference / collapse: the caption format trained and evaluated")
    parser.add_argument("--steps", type=int, help=f"sft: optimizer steps (default {SFT['steps']})")
    parser.add_argument("--clip-tower", action="store_true",
                        help="sft: start the vision tower from a CLIP trained on the seed split")
    parser.add_argument("--checkpoint", type=Path,
                        help="preference / collapse: the SFT checkpoint (default: the last of --out's sft/)")
    parser.add_argument("--freeze-vision", action="store_true", help="sft: keep the vision tower frozen")
    parser.add_argument("--pref-lr", type=float, help=f"preference: peak lr (default {PREFERENCE['lr']})")
    parser.add_argument("--pref-steps", type=int, help=f"preference: steps (default {PREFERENCE['steps']})")
    parser.add_argument("--pref-train-vision", action="store_true", help="preference: train the vision tower too")
    parser.add_argument("--weights", default="0.8,1.0,0.2", help="preference: a1,a2,a3 (DPO, SFT, BCO)")
    parser.add_argument("--rejected", default="own", choices=("own", *REJECTED_MODES),
                        help="preference: own worst sample (default), or a perturbed gt caption")
    parser.add_argument("--eval-limit", type=int, help=f"test images evaluated (default {EVAL['limit']})")
    parser.add_argument("--checkpoint-every", type=int,
                        help=f"sft: steps between evaluated checkpoints (default {SFT['checkpoint_every']})")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--tag", default="", help="suffix of the output JSON's name")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--experiment", type=Path, help="formats: runs/<name>/seed<S> of the MLLM-augmented run")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    EVAL["limit"] = args.eval_limit or EVAL["limit"]
    SFT["checkpoint_every"] = args.checkpoint_every or SFT["checkpoint_every"]
    if args.step == "sft":
        write(args.out, f"sft{args.tag}.json", sft(args.out, args.seed, args.format, args.steps,
                                                  clip_tower=args.clip_tower, train_vision=not args.freeze_vision))
    elif args.step == "preference":
        PREFERENCE.update({k: v for k, v in (("lr", args.pref_lr), ("steps", args.pref_steps)) if v})
        PREFERENCE["train_vision"] = args.pref_train_vision
        weights = tuple(float(w) for w in args.weights.split(","))
        write(args.out, f"preference{args.tag}.json",
              preference(args.out, args.seed, args.format, weights, args.rejected, args.checkpoint))
    elif args.step == "collapse":
        write(args.out, "collapse.json", collapse(args.out, args.seed, args.format, args.checkpoint))
    else:
        write(args.out, "formats.json", formats(args.experiment))


if __name__ == "__main__":
    main()
