"""Query-pair construction on ShapesWorld with a trained tiny CLIP as retriever and the scene-graph oracle as the
challenge-response agent (#14 item 2; the oracle is the upper bound of any agent). Trains the retriever with the
vlm console (alt-text + gt short captions, 300 steps), runs make-data on one split and writes the counts and the
hard-query T2I R@1 before and after the oracle's best rewrite to docs/results/rewriter_query_pairs.json.

    python experiments/rewriter/query_pairs.py [--seed 0] [--split pref] [--min-similarity 0.3,0.0]
        [--work runs/rewriter_query_pairs]

Each (seed, MiniLM threshold) is one entry of the JSON file; the retriever is trained once per seed.
"""

import argparse
import json
import sys
from pathlib import Path

from vlforge.common.cli import run_cli
from vlforge.common.shapes.build import build_shapes_store
from vlforge.rewriter.make_data import main as make_data
from vlforge.rewriter.pair_files import PRO_FILE, SFT_FILE, SUMMARY_FILE, read_query_pairs

OUTPUT = Path(__file__).resolve().parents[2] / "docs" / "results" / "rewriter_query_pairs.json"


def _quantiles(values: list[float]) -> dict[str, float]:
    """Median and 10th / 90th percentiles: the retriever-score gaps PRO's ranking multiplies (its reward scale)."""
    if not values:
        return {}
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"p10": pick(0.1), "median": pick(0.5), "p90": pick(0.9)}


def gt_short_recall(store: Path, split: str, checkpoint: Path) -> float:
    """T2I R@1 of the split's gt short captions over the same gallery: what a clean caption reaches."""
    from vlforge.common.store import CaptionStore
    from vlforge.rewriter.embedding_cache import cached_image_index
    from vlforge.rewriter.retriever import Retriever
    from vlforge.vlm.loading import load_clip

    model = load_clip(str(checkpoint))
    index, _ = cached_image_index(model, store, split, checkpoint, 32)
    records = list(CaptionStore(store).iter_records(split=split))
    texts = [r.captions_by(source="gt", kind="short")[0].text for r in records]
    ranks, _ = Retriever(model).ranks(texts, index, [r.image_id for r in records])
    return 100.0 * float((ranks == 1).float().mean())


def train_retriever(store: Path, root: Path, seed: int) -> Path:
    checkpoint = root / "vlm" / "version_0" / "checkpoints" / "last.ckpt"
    if not checkpoint.is_file():
        code = run_cli("vlm", ["fit", "--config", "vlm:model/clip_tiny.yaml",
                               "--config", "vlm:data/shapes_alt_text_gt_short.yaml",
                               "--data.init_args.store", str(store), "--data.init_args.num_workers", "0",
                               "--trainer.max_steps", "300", "--trainer.limit_val_batches", "0",
                               "--trainer.num_sanity_val_steps", "0", "--trainer.enable_progress_bar", "false",
                               "--seed_everything", str(seed), "--run_root", str(root)])
        if code != 0:
            sys.exit(code)
    return checkpoint


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", default="pref")
    parser.add_argument("--min-similarity", default="0.3,0.0", help="MiniLM thresholds, comma-separated")
    parser.add_argument("--work", default="runs/rewriter_query_pairs")
    args = parser.parse_args()
    work = Path(args.work) / f"seed{args.seed}"
    store = Path(args.work) / "store"
    if not store.exists():
        build_shapes_store(store, num_images=3000, seed=0, image_size=32, workers=1)
    checkpoint = train_retriever(store, work / "runs", args.seed)
    gt_short_r1 = gt_short_recall(store, args.split, checkpoint)
    results = {}
    for threshold in (float(t) for t in args.min_similarity.split(",")):
        pairs_dir = work / f"pairs_min_sim{threshold}"
        if not (pairs_dir / SUMMARY_FILE).is_file():  # a finished make-data run is reused
            code = make_data(["--store", str(store), "--split", args.split, "--checkpoint", str(checkpoint),
                              "--output_dir", str(pairs_dir), "--pairs.min_similarity", str(threshold)])
            if code != 0:
                sys.exit(code)
        summary = json.loads((pairs_dir / SUMMARY_FILE).read_text())
        counts = summary["counts"]
        sft, pro = read_query_pairs(pairs_dir / SFT_FILE), read_query_pairs(pairs_dir / PRO_FILE)
        low_fixed = sum(row.origin == "low" for row in sft)
        queries = counts["queries"]
        results[f"seed{args.seed}/min_sim{threshold}"] = {
            "seed": args.seed, "split": args.split, "min_similarity": threshold,
            "store": "ShapesWorld 3000 images, 32 px, generator seed 0",
            "retriever": "vlm:model/clip_tiny.yaml, alt-text + gt short, 300 steps, batch 64",
            "counts": counts, "d_sft": len(sft), "d_pro": len(pro),
            "hard_query_t2i_r1_raw": 100.0 * counts.get("high_quality", 0) / queries,
            "hard_query_t2i_r1_oracle_best_rewrite": 100.0 * (counts.get("high_quality", 0) + low_fixed) / queries,
            "gt_short_t2i_r1_same_gallery": gt_short_r1,
            "low_quality_fixed_by_oracle": 100.0 * low_fixed / max(counts.get("low_quality", 0), 1),
            "mean_candidates_per_d_pro_row": sum(len(r.candidates) for r in pro) / max(len(pro), 1),
            "d_pro_best_minus_worst_score": _quantiles([r.candidates[0].score - r.candidates[-1].score for r in pro]),
            "settings": summary["settings"]}
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(OUTPUT.read_text()) if OUTPUT.is_file() else {}
    previous.update(results)
    OUTPUT.write_text(json.dumps(previous, indent=2, sort_keys=True) + "\n")
    for key, result in results.items():
        print(key, {k: v for k, v in result.items() if k.startswith(("hard", "low", "d_"))})
