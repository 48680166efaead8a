"""The rewriter's three training steps on ShapesWorld (#14 "Measurable"): hard-query T2I R@1 on the test split with
the frozen retriever for raw queries, SFT, SFT+PRO and SFT+PRO+PPO rewrites, and PPO's KL and MiniLM similarity
over training. Writes docs/results/rewriter_training.json (one entry per seed).

    python experiments/rewriter/training_outcome.py [--seed 0] [--work runs/rewriter_training] [--only STAGE]

Stages (each skipped when its output exists): store (ShapesWorld 3000 images, 32 px, generator seed 0, shared by
the seeds), retriever (vlm:model/clip_tiny.yaml, 300 steps, as experiments/rewriter/query_pairs.py), pairs
(make-data on the pool split: D_SFT / D_PRO for training; on the val split: for validation), sft, pro, ppo (the
vlforge-rewriter console with the shipped tiny configs and this file's deltas), evaluate (greedy rewrites of the
test split's hard queries).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

import torch
import yaml

from vlforge.common.cli import run_cli
from vlforge.common.lm.model import GenerativeModel
from vlforge.common.shapes.build import build_shapes_store
from vlforge.rewriter.embedding_cache import cached_image_index
from vlforge.rewriter.make_data import main as make_data
from vlforge.rewriter.pair_files import PRO_FILE, SFT_FILE, SUMMARY_FILE
from vlforge.rewriter.retriever import Retriever
from vlforge.rewriter.rewrite_recall import hard_queries, recall_at_1, rewrite
from vlforge.rewriter.similarity import SentenceSimilarity
from vlforge.vlm.loading import load_clip

sys.path.insert(0, str(Path(__file__).resolve().parent))
from query_pairs import train_retriever  # noqa: E402  (the retriever recipe of the query-pair experiment)

REPO = Path(__file__).resolve().parents[2]
OUTPUT = REPO / "docs" / "results" / "rewriter_training.json"
# Training pairs come from the 2100-image pool split: "high quality" is rank <= 10 there (the top 0.5 %, as rank 1
# is in the 150-image val / test galleries).
TRAIN_PAIRS = ["--split", "pool", "--pairs.high_quality_rank", "10", "--pairs.max_queries", "2000"]
VAL_PAIRS = ["--split", "val"]


def prepare_pairs(store: Path, checkpoint: Path, work: Path) -> dict[str, Path]:
    folders = {}
    for name, options in (("train", TRAIN_PAIRS), ("val", VAL_PAIRS)):
        folder = work / f"pairs_{name}"
        if not (folder / SUMMARY_FILE).is_file():
            code = make_data(["--store", str(store), "--checkpoint", str(checkpoint), "--output_dir", str(folder),
                              *options])
            if code != 0:
                sys.exit(code)
        folders[name] = folder
    return folders


def fit(stage: str, config: str, overrides: list[str], runs: Path, seed: int) -> Path:
    """One training step from the rewriter console; a finished run (its last.ckpt) is reused."""
    checkpoint = runs / stage / "version_0" / "checkpoints" / "last.ckpt"
    if not checkpoint.is_file():
        code = run_cli("rewriter", ["fit", "--config", f"rewriter:{config}", *overrides, "--seed_everything",
                                    str(seed), "--run_name", stage, "--run_root", str(runs),
                                    "--trainer.enable_model_summary", "false"])
        if code != 0:
            sys.exit(code)
    return checkpoint


def train(store: Path, retriever: Path, pairs: dict[str, Path], runs: Path, seed: int) -> dict[str, Path]:
    sft = fit("sft", "sft_tiny.yaml", ["--data.init_args.train_file", str(pairs["train"] / SFT_FILE),
                                       "--data.init_args.val_file", str(pairs["val"] / SFT_FILE)], runs, seed)
    pro = fit("pro", "pro_tiny.yaml", ["--model.init_args.model.init_args.weights", str(sft),
                                       "--data.init_args.train_file", str(pairs["train"] / PRO_FILE),
                                       "--data.init_args.val_file", str(pairs["val"] / PRO_FILE),
                                       "--trainer.val_check_interval", "100", "--trainer.check_val_every_n_epoch",
                                       "null"], runs, seed)
    ppo = fit("ppo", "ppo_tiny.yaml", ["--model.init_args.model.init_args.weights", str(pro),
                                       "--model.init_args.reward.init_args.checkpoint", str(retriever),
                                       "--model.init_args.reward.init_args.store", str(store),
                                       "--data.init_args.train_file", str(pairs["train"] / PRO_FILE)], runs, seed)
    return {"sft": sft, "sft_pro": pro, "sft_pro_ppo": ppo}


def evaluate(store: Path, retriever: Path, policies: dict[str, Path], split: str) -> dict[str, Any]:
    """Hard-query T2I R@1 of the split's raw queries and of each policy's greedy rewrites over the split's images."""
    model = load_clip(str(retriever))
    index, _ = cached_image_index(model, store, split, retriever, 32)
    scorer = Retriever(model)
    queries = hard_queries(str(store), split)
    image_ids = [q.image_id for q in queries]
    raw = [q.text for q in queries]
    out: dict[str, Any] = {"queries": len(queries), "raw": recall_at_1(scorer, index, raw, image_ids)}
    similarity = SentenceSimilarity()
    for name, checkpoint in policies.items():
        texts, empty = rewrite(GenerativeModel("preset:llama_tiny", weights=str(checkpoint)), raw)
        out[name] = recall_at_1(scorer, index, texts, image_ids)
        out[f"{name}_empty_rewrites"] = empty
        out[f"{name}_minilm_similarity"] = float(similarity.pairwise(raw, texts).mean())
        out[f"{name}_examples"] = [{"query": q, "rewrite": t} for q, t in list(zip(raw, texts, strict=True))[:5]]
    return out


def ppo_curves(run_dir: Path) -> dict[str, list[list[float]]]:
    """(step, value) series of PPO's KL, β, reward and MiniLM similarity from the run's metrics.csv."""
    curves: dict[str, list[list[float]]] = {}
    with open(run_dir / "metrics.csv") as rows:
        for row in csv.DictReader(rows):
            for name in ("train/kl", "train/kl_coef", "train/reward", "train/similarity", "train/skipped"):
                if row.get(name):
                    curves.setdefault(name, []).append([int(row["step"]), float(row[name])])
    return curves


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default="runs/rewriter_training")
    parser.add_argument("--only", default=None, help="stop after this stage (pairs, train)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    work = Path(args.work) / f"seed{args.seed}"
    store = Path(args.work) / "store"
    if not store.exists():
        build_shapes_store(store, num_images=3000, seed=0, image_size=32, workers=1)
    checkpoint = train_retriever(store, work / "runs", args.seed)
    pairs = prepare_pairs(store, checkpoint, work)
    if args.only == "pairs":
        sys.exit(0)
    policies = train(store, checkpoint, pairs, work / "runs", args.seed)
    if args.only == "train":
        sys.exit(0)
    ppo_config = yaml.safe_load((work / "runs" / "ppo" / "version_0" / "config.yaml").read_text())
    result = {"seed": args.seed, "store": "ShapesWorld 3000 images, 32 px, generator seed 0",
              "retriever": "vlm:model/clip_tiny.yaml, alt-text + gt short, 300 steps, batch 64",
              "training_pairs": json.loads((pairs["train"] / SUMMARY_FILE).read_text())["counts"],
              "test": evaluate(store, checkpoint, policies, "test"),
              "val": evaluate(store, checkpoint, policies, "val"),
              "ppo_target_kl": ppo_config["model"]["init_args"]["kl_target"],
              "ppo_curves": ppo_curves(work / "runs" / "ppo" / "version_0")}
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(OUTPUT.read_text()) if OUTPUT.is_file() else {}
    previous[f"seed{args.seed}"] = result
    OUTPUT.write_text(json.dumps(previous, indent=2, sort_keys=True) + "\n")
    print(json.dumps({k: v for k, v in result["test"].items() if not k.endswith("examples")}, indent=1))
