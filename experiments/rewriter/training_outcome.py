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
import json
import sys
from pathlib import Path

import torch

from vlforge.common.shapes.build import build_shapes_store
from vlforge.rewriter.make_data import main as make_data
from vlforge.rewriter.pair_files import SUMMARY_FILE

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


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default="runs/rewriter_training")
    parser.add_argument("--only", default=None, help="stop after this stage")
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
