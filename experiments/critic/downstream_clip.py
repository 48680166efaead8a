"""Critic-rewrite of a weak captioner's captions, and what it does downstream (#12, "Measurable"): the main job's
``llava_short`` captions of the pool split (CHAIR_i about 67 %; the main job captions only the pool) checked sentence
by sentence and rewritten, their CHAIR_i / object coverage / length before and after, and a tiny CLIP trained on
alt-text + the rewritten captions against alt-text + the raw ones (the main job's ``k1`` run: same config, steps and
seed), T2I R@1 on the test split.

    python experiments/critic/downstream_clip.py --seeds 0 1 2 --out docs/results/critic_downstream_clip.json \\
        [--rewriter preset:llama_tiny CHECKPOINT]

Needs the main job's worlds (``python experiments/mllm_augmented.py experiments/shapes/mllm_augmented.yaml ...``,
``runs/mllm_augmented/seed{S}/world/store`` with the ``llava_short`` source); each is copied into ``--work`` first, so
the main job's stores are not changed. Critic: ``--critic scene_graph`` (the default: each sentence judged against
the scene graph, the upper bound of a trained critic) or a trained critic as ``PRESET CHECKPOINT``. Rewrites: the
drop-inconsistent baseline (source ``llava_short+critic``) and, with ``--rewriter PRESET CHECKPOINT`` (e.g.
``critic:rewrite_sentence_tiny.yaml``'s, ``--rewrite-scope sentence``), the generative rewrite
(``llava_short+rewrite``). Every step is a console command in its own process (one torch thread); a finished step
is not re-run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from rewrite_model import PROMPTS  # noqa: E402  (this folder: the tiny rewriters' prompts by scope)
from steps import mean_spread, run_step  # noqa: E402  (experiments/steps.py)

BIN = Path(sys.executable).parent
SOURCE = "llava_short"
DROP, REWRITE = f"{SOURCE}+critic", f"{SOURCE}+rewrite"
CLIP_STEPS = 1000  # the main job's CLIP runs (experiments/shapes/mllm_augmented.yaml)



def critic_rewrite(store: Path, work: Path, critic: list[str], rewriter: list[str] | None,
                   scope: str) -> list[str]:
    """Critic-rewrite of the pool split's llava_short captions: the sources written."""
    critic_args = (["--model.init_args.critic_source", "scene_graph"] if critic == ["scene_graph"] else
                   ["--model.init_args.critic_source", critic[0], "--model.init_args.checkpoint", critic[1],
                    "--model.init_args.instruction", "short"])
    variants = [(DROP, [])]
    if rewriter:
        variants.append((REWRITE, ["--model.init_args.rewriter_source", rewriter[0],
                                   "--model.init_args.rewriter_checkpoint", rewriter[1],
                                   "--model.init_args.rewrite_prompt", PROMPTS[scope],
                                   "--model.init_args.rewrite_scope", scope, "--model.init_args.target", REWRITE]))
    for target, extra in variants:
        done = work / f"{target}.done"
        if not done.exists():
            run_step([str(BIN / "vlforge-critic"), "predict", "--config", "critic:predict_tiny.yaml",
                      "--data.init_args.store", str(store), "--data.init_args.split", "pool",
                      "--model.init_args.source", SOURCE, "--model.init_args.kind", "null", *critic_args, *extra,
                      "--trainer.enable_progress_bar", "false", "--run_root", str(work / "predict")],
                     work / f"predict_{target}.log")
            done.touch()
    return [target for target, _ in variants]


def analysis(store: Path, work: Path, target: str) -> dict[str, Any]:
    out = work / f"analysis_{target}.json"
    if not out.exists():
        run_step([str(BIN / "vlforge-critic"), "analyze", "--store", str(store), "--split", "pool", "--source", SOURCE,
                  "--rewritten", target, "--output", str(out)], work / f"analyze_{target}.log")
    return json.loads(out.read_text())


def clip(store: Path, work: Path, seed: int, captioner_source: str) -> dict[str, float]:
    """The main job's k1 CLIP run with ``captioner_source`` beside alt-text; its test retrieval."""
    name = "clip_" + captioner_source.replace("+", "_")
    root, config = work / name, work / f"{name}.yaml"
    checkpoint = root / "fit" / "version_0" / "checkpoints" / "last.ckpt"
    if not checkpoint.exists():
        config.write_text(json.dumps({
            "seed_everything": seed, "trainer": {"max_steps": CLIP_STEPS, "limit_val_batches": 0},
            "data": {"class_path": "vlforge.vlm.data.ContrastiveDataModule", "init_args": {
                "store": str(store), "image_size": 32, "batch_size": 64, "eval_batch_size": 256, "num_workers": 0,
                "eval_captions": {"source": "gt", "kind": "short"}, "sampling": "per_caption",
                "train_captions": [{"source": "alt_text"}, {"source": captioner_source}]}}}))
        run_step([str(BIN / "vlforge-vlm"), "fit", "--config", "vlm:model/clip_tiny.yaml", "--config", str(config),
                  "--run_root", str(root), "--run_name", "fit", "--trainer.enable_progress_bar", "false"],
                 work / f"{name}_fit.log")
    metrics = root / "eval" / "metrics.json"
    if not metrics.exists():
        run_step([str(BIN / "vlforge-vlm"), "evaluate", "--checkpoint", str(checkpoint), "--stores", f"[{store}]",
                  "--split", "test", "--metrics", "[retrieval]", "--eval_captions", '{"source": "gt", "kind": "short"}',
                  "--output_dir", str(root / "eval")], work / f"{name}_eval.log")
    return json.loads(metrics.read_text())["results"]["store"]["retrieval"]


def one_seed(seed: int, args: argparse.Namespace) -> dict[str, Any]:
    work = args.work / f"seed{seed}"
    store = work / "store"
    if not store.exists():
        shutil.copytree(args.main_runs / f"seed{seed}" / "world" / "store", store)
    targets = critic_rewrite(store, work, args.critic, args.rewriter, args.rewrite_scope)
    return {"seed": seed,
            "captions": {target: analysis(store, work, target) for target in targets},
            "clip": {source: clip(store, work, seed, source) for source in (SOURCE, *targets)}}



def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    first = runs[0]
    captions = {SOURCE: {k: mean_spread([r["captions"][DROP]["before"][k] for r in runs])
                         for k in ("chair_i", "object_coverage", "mean_words")}}
    for target in first["captions"]:
        captions[target] = {k: mean_spread([r["captions"][target]["after"][k] for r in runs])
                            for k in ("chair_i", "object_coverage", "mean_words")}
    clip_rows = {source: {k: mean_spread([r["clip"][source][k] for r in runs]) for k in ("t2i_r1", "t2i_r5", "i2t_r1")}
                 for source in first["clip"]}
    return {"captions_pool": captions, "clip_test": clip_rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--critic", nargs="+", default=["scene_graph"], metavar="scene_graph | PRESET CHECKPOINT")
    parser.add_argument("--rewriter", nargs=2, default=None, metavar=("PRESET", "CHECKPOINT"))
    parser.add_argument("--rewrite-scope", choices=sorted(PROMPTS), default="sentence",
                        help="the rewriter's scope (critic:rewrite_sentence_tiny.yaml: sentence)")
    parser.add_argument("--main-runs", type=Path, default=Path("runs/mllm_augmented"))
    parser.add_argument("--work", type=Path, default=Path("runs/critic_downstream"))
    parser.add_argument("--out", type=Path, default=Path("docs/results/critic_downstream_clip.json"))
    args = parser.parse_args()
    if args.critic != ["scene_graph"] and len(args.critic) != 2:
        parser.error("--critic is scene_graph or PRESET CHECKPOINT")
    runs = [one_seed(seed, args) for seed in args.seeds]
    report = {"command": "python " + " ".join([str(Path(sys.argv[0])), *sys.argv[1:]]),
              "summary": summarise(runs), "runs": runs}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    for name, row in report["summary"]["captions_pool"].items():
        print(f"{name}: " + ", ".join(f"{k} {v['mean']:.1f}±{v['std']:.1f}" for k, v in row.items()))
    for name, row in report["summary"]["clip_test"].items():
        print(f"CLIP alt-text + {name}: " + ", ".join(f"{k} {v['mean']:.1f}±{v['std']:.1f}" for k, v in row.items()))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
