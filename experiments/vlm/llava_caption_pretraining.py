"""LLaVA caption pre-training outcome on ShapesWorld (issue 13, "Measurable"): the same instruction stage after
caption stages (pre-align + pre-train) on different captions, then VQA accuracy and POPE F1 on the test split.

    python experiments/vlm/llava_caption_pretraining.py --conditions alt_text dense --seeds 0 1 2 \\
        --out docs/results/llava_caption_pretraining.json

Each condition is a YAML delta in experiments/vlm/llava/ (alt_text, dense, mix_33_66) stacked on the shipped
vlm:mllm/pre_align_tiny.yaml and pretrain_tiny.yaml; the instruction stage (vlm:mllm/instruct_tiny.yaml, the seed
split's QA pairs from `vlforge-vlm shapes-llava-json`) and the evaluation (`vlforge-vlm evaluate-mllm`) are the
same for every condition. ``--no-pre-align`` skips stage 1 (pre-train starts from the built parts: the
no_pre_align.yaml delta). Every stage runs the vlforge-vlm console in its own process; runs/stores are kept under
``--work`` and a finished stage is not re-run. The seed S is Lightning's seed_everything (data order, caption draws)
and the stage model's seed (the random vision tower and the projector; the tiny LM preset's init is fixed).
The store (``--num-images`` 32 px images, generator seed 0) is built once.

``--vision-tower FOLDER`` replaces the tiny configs' random-init CLIP tower by a pretrained one (e.g. vlforge-vlm's
tiny CLIP trained on the same store and exported with ``vlforge-vlm export --format hf-vision``): the runner writes
that delta into ``--work`` and stacks it on every stage. A tower pre-trained per patch by ``vlforge-captioner
pretrain-tower`` is llava_small's 64 px tower: build the store with ``--image-size 64``. ``--pretrain-steps N`` runs
the pre-train stage N steps instead of the shipped 300 (the run's folder name says so). ``--patch-tower STEPS``
pre-trains that tower here (on the store's pool split, probed on val, seed 0; kept in ``--work``) and uses it.

The ``captioner_dense`` condition pre-trains on a trained captioner's dense captions of the pool split: ``--captioner
PRESET CHECKPOINT`` names the captioner (a ``vlforge-captioner`` preset and SFT checkpoint, e.g. the earlier captioner
store plan's seed-0 ``dense_patch`` run); the runner writes its greedy captions into the store as source
``captioner_dense`` (``vlforge-captioner generate`` with experiments/vlm/captioner/dense_pool.yaml, resumable; and
of the first 64 val images, the stages' validation loss) and
their CHAIR, coverage and length against the scene graphs (``vlforge-captioner analyze``) into ``--work``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from steps import mean_spread, run_step  # noqa: E402  (experiments/steps.py)

HERE = Path(__file__).resolve().parent
DELTAS = HERE / "llava"
CONSOLE = [sys.executable, "-m", "vlforge.vlm.cli"]
BIN = Path(sys.executable).parent  # the other consoles, from this interpreter's environment (PATH may lack it)
NO_PRE_ALIGN = "no_pre_align.yaml"
VAL_CAPTIONED = 64  # the caption stages' validation images (val_limit 32 in the shipped tiny configs)
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]



def prepare_data(work: Path, num_images: int, image_size: int) -> tuple[Path, Path]:
    store, instruct = work / "shapesworld", work / "llava" / "instruct.json"
    if not store.exists():
        run_step([str(BIN / "vlforge-store"), "shapes", str(store), "--num-images", str(num_images), "--seed", "0",
                  "--image-size", str(image_size)], work / "store.log")
    if not instruct.exists():
        run_step([*CONSOLE, "shapes-llava-json", str(store), "--split", "seed", "--out", str(instruct)],
                 work / "instruct_json.log")
    return store, instruct


def fit(stage: str, root: Path, seed: int, extra: list[str]) -> Path:
    """One stage of the shipped tiny chain in ``root`` (skipped when its checkpoint exists)."""
    run_dir = root / f"llava_{stage}_tiny"
    if not (run_dir / "version_0" / "checkpoints" / "last.ckpt").exists():
        root.mkdir(parents=True, exist_ok=True)
        run_step([*CONSOLE, "fit", "--config", f"vlm:mllm/{stage}_tiny.yaml", *extra, "--run_root", str(root),
                  "--seed_everything", str(seed), "--model.init_args.model.init_args.seed", str(seed), *QUIET],
                 root / f"{stage}.log")
    return run_dir


def patch_tower(work: Path, store: Path, steps: int) -> Path:
    """llava_small's vision tower pre-trained per patch on the pool split (``vlforge-captioner pretrain-tower``)."""
    out = work / "patch_tower"
    if not (out / "tower").exists():
        run_step([str(BIN / "vlforge-captioner"), "pretrain-tower", "--store", str(store), "--train-split", "pool",
                  "--eval-split", "val", "--steps", str(steps), "--seed", "0", "--out", str(out)],
                 work / "patch_tower.log")
    return out / "tower"


def captioner_captions(work: Path, store: Path, preset: str, checkpoint: str) -> dict[str, Any]:
    """The ``captioner_dense`` source of the pool split from the captioner ``preset`` + ``checkpoint``, and its
    caption statistics (``vlforge-captioner analyze``'s entry for the source)."""
    for split in (["--split", "pool"], ["--split", "val", "--limit", str(VAL_CAPTIONED)]):
        run_step([str(BIN / "vlforge-captioner"), "generate", "--store", str(store), "--config",
                  str(HERE / "captioner" / "dense_pool.yaml"), "--source", preset, "--checkpoint", checkpoint, *split],
                 work / "captioner_dense_generate.log")
    stats = work / "captioner_dense_analysis" / "analysis.json"
    if not stats.exists():
        run_step([str(BIN / "vlforge-captioner"), "analyze", "--store", str(store), "--split", "pool", "--source",
                  "captioner_dense", "--source", "gt", "--out", str(stats.parent)],
                 work / "captioner_dense_analyze.log")
    analysis = json.loads(stats.read_text())
    return {"preset": preset, "checkpoint": checkpoint,
            **{key: {name: analysis[key][name] for name in ("captioner_dense", "gt:dense")}
               for key in ("chair", "lengths")}}


def vision_delta(work: Path, tower: Path | None) -> list[str]:
    """A generated delta putting the pretrained tower ``tower`` into every stage (none without one)."""
    if tower is None:
        return []
    path = work / "vision_tower.yaml"
    init_args = {"vision": str(tower.resolve()), "vision_config": None}
    path.write_text(json.dumps({"model": {"init_args": {"model": {"init_args": init_args}}}}))
    return ["--config", str(path)]


def one_run(condition: str, seed: int, store: Path, instruct: Path, work: Path, pre_align: bool,
            eval_limit: int, instruct_steps: int, tower: list[str], pretrain_steps: int | None) -> dict[str, Any]:
    name = ((condition if pre_align else f"{condition}_no_pre_align") + ("_clip_tower" if tower else "")
            + (f"_pretrain{pretrain_steps}" if pretrain_steps else ""))
    root = work / "runs" / name / f"seed{seed}"
    delta = ["--config", str(DELTAS / f"{condition}.yaml"), *tower, "--data.init_args.store", str(store)]
    start = ["--model.init_args.model.init_args.init_from", str(fit("pre_align", root, seed, delta))] if pre_align \
        else ["--config", str(DELTAS / NO_PRE_ALIGN)]
    steps = ["--trainer.max_steps", str(pretrain_steps)] if pretrain_steps else []
    pretrain = fit("pretrain", root, seed, [*delta, *start, *steps])
    instruct_run = fit("instruct", root, seed, [*tower, "--data.init_args.json", str(instruct),
                                                "--trainer.max_steps", str(instruct_steps),
                                                "--model.init_args.model.init_args.init_from", str(pretrain)])
    out = root / "eval.json"
    if not out.exists():
        run_step([*CONSOLE, "evaluate-mllm", "--checkpoint",
                  str(instruct_run / "version_0" / "checkpoints" / "last.ckpt"), "--store", str(store),
                  "--split", "test",
                  "--limit", str(eval_limit), "--chair_limit", "64", "--out", str(out)], root / "eval.log")
    result = json.loads(out.read_text())
    return {"condition": name, "seed": seed, "vqa": {k: v["accuracy"] for k, v in result["vqa"].items()},
            "vqa_questions": result["vqa"]["all"]["total"],
            "pope_f1": {k: v["f1"] for k, v in result["pope"].items()},
            "pope_yes_ratio": {k: v["yes_ratio"] for k, v in result["pope"].items()},
            "chair_i": result["chair"]["chair_i"]}



def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in dict.fromkeys(r["condition"] for r in runs):
        rows = [r for r in runs if r["condition"] == name]
        out[name] = {"vqa_all": mean_spread([100 * r["vqa"]["all"] for r in rows]),
                     "pope_f1": {k: mean_spread([100 * r["pope_f1"][k] for r in rows]) for k in rows[0]["pope_f1"]},
                     "chair_i": mean_spread([100 * r["chair_i"] for r in rows]),
                     "vqa_per_type": {k: mean_spread([100 * r["vqa"][k] for r in rows]) for k in rows[0]["vqa"]}}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conditions", nargs="+", default=["alt_text", "dense"],
                        choices=sorted(p.stem for p in DELTAS.glob("*.yaml") if p.name != NO_PRE_ALIGN))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--no-pre-align", action="store_true", help="skip stage 1 (pre-train from the built parts)")
    parser.add_argument("--num-images", type=int, default=10000)
    parser.add_argument("--image-size", type=int, default=32, help="the store's image size (32; 64 for a tower "
                        "pre-trained by vlforge-captioner pretrain-tower on llava_small)")
    parser.add_argument("--eval-limit", type=int, default=200, help="test images asked VQA and POPE questions")
    parser.add_argument("--instruct-steps", type=int, default=300, help="the instruction stage's steps (300)")
    parser.add_argument("--pretrain-steps", type=int, default=None,
                        help="the pre-train stage's steps (default: the shipped config's 300)")
    towers = parser.add_mutually_exclusive_group()
    towers.add_argument("--vision-tower", type=Path, default=None, help="a pretrained CLIP vision folder")
    towers.add_argument("--patch-tower", type=int, default=None, metavar="STEPS",
                        help="pre-train llava_small's tower per patch for STEPS steps here (needs --image-size 64)")
    parser.add_argument("--captioner", nargs=2, metavar=("PRESET", "CHECKPOINT"), default=None,
                        help="the trained captioner of the captioner_dense condition")
    parser.add_argument("--work", type=Path, default=Path("runs/llava_caption_pretraining"))
    parser.add_argument("--out", type=Path, default=Path("docs/results/llava_caption_pretraining.json"))
    args = parser.parse_args()
    if ("captioner_dense" in args.conditions) != (args.captioner is not None):
        parser.error("--captioner PRESET CHECKPOINT goes with the captioner_dense condition (and only with it)")
    args.work.mkdir(parents=True, exist_ok=True)
    store, instruct = prepare_data(args.work, args.num_images, args.image_size)
    if args.patch_tower is not None:
        args.vision_tower = patch_tower(args.work, store, args.patch_tower)
    tower = vision_delta(args.work, args.vision_tower)
    captioner = captioner_captions(args.work, store, *args.captioner) if args.captioner else None
    runs = [one_run(c, s, store, instruct, args.work, not args.no_pre_align, args.eval_limit, args.instruct_steps,
                    tower, args.pretrain_steps) for s in args.seeds for c in args.conditions]
    report = {"command": "python " + " ".join([str(Path(sys.argv[0])), *sys.argv[1:]]),
              "summary": summarise(runs), "runs": runs, **({"captioner": captioner} if captioner else {})}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    for name, row in report["summary"].items():
        f1 = ", ".join(f"{k} {v['mean']:.1f}±{v['std']:.1f}" for k, v in row["pope_f1"].items())
        print(f"{name}: VQA {row['vqa_all']['mean']:.1f}±{row['vqa_all']['std']:.1f} (n={row['vqa_all']['n']}); "
              f"POPE F1 {f1}; CHAIR_i {row['chair_i']['mean']:.1f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
