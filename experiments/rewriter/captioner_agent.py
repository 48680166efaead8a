"""The captioner-description agent against the scene-graph oracle in make-data's challenge-response loop on
ShapesWorld (#14 item 2): the same store, retriever and split as experiments/rewriter/query_pairs.py; a tiny LLaVA
captioner fine-tuned on the seed split's dense captions (captioner console) describes the split's images into the
store (captioner predict), and make-data runs once with each agent. Writes the hard-query T2I R@1 raw and with each
agent's best rewrite to docs/results/rewriter_captioner_agent.json.

    python experiments/rewriter/captioner_agent.py [--seed 0] [--split pref] [--captioner-steps 900]
        [--work runs/rewriter_captioner_agent]
"""

import argparse
import json
import sys
from pathlib import Path

from query_pairs import gt_short_recall, train_retriever

from vlforge.common.cli import run_cli
from vlforge.common.shapes.build import build_shapes_store
from vlforge.rewriter.make_data import main as make_data
from vlforge.rewriter.pair_files import SFT_FILE, SUMMARY_FILE, read_query_pairs

OUTPUT = Path(__file__).resolve().parents[2] / "docs" / "results" / "rewriter_captioner_agent.json"
CAPTIONER = "tiny_llava_dense_sft"


def train_captioner(store: Path, root: Path, seed: int, steps: int) -> Path:
    checkpoint = root / "captioner" / "version_0" / "checkpoints" / "last.ckpt"
    if not checkpoint.is_file():
        code = run_cli("captioner", ["fit", "--config", "captioner:model/sft_tiny.yaml",
                                     "--config", "captioner:data/shapes_sft.yaml", "--data.init_args.store", str(store),
                                     "--trainer.max_steps", str(steps), "--trainer.limit_val_batches", "0",
                                     "--trainer.num_sanity_val_steps", "0", "--trainer.enable_progress_bar", "false",
                                     "--seed_everything", str(seed), "--run_root", str(root)])
        if code != 0:
            sys.exit(code)
    return checkpoint


def describe(store: Path, split: str, checkpoint: Path, root: Path) -> None:
    """The captioner's dense description of every image of the split, into the store (resumable)."""
    code = run_cli("captioner", ["predict", "--config", "captioner:generation/predict_tiny.yaml",
                                 "--data.init_args.store", str(store), "--data.init_args.split", split,
                                 "--model.init_args.captioner.name", CAPTIONER,
                                 "--model.init_args.captioner.checkpoint", str(checkpoint),
                                 "--model.init_args.captioner.decoding.max_new_tokens", "64",
                                 "--model.init_args.shear", "false", "--trainer.enable_progress_bar", "false",
                                 "--run_root", str(root)])
    if code != 0:
        sys.exit(code)


def description_recall(store: Path, split: str, checkpoint: Path) -> float:
    """T2I R@1 of the captioner's descriptions on the split's gallery (how much they say about their image)."""
    from vlforge.common.store import CaptionStore
    from vlforge.rewriter.embedding_cache import cached_image_index
    from vlforge.rewriter.retriever import Retriever
    from vlforge.vlm.loading import load_clip

    model = load_clip(str(checkpoint))
    index, _ = cached_image_index(model, store, split, checkpoint, 32)
    records = [r for r in CaptionStore(store).iter_records(split=split) if r.captions_by(source=CAPTIONER)]
    texts = [r.captions_by(source=CAPTIONER)[0].text for r in records]
    ranks, _ = Retriever(model).ranks(texts, index, [r.image_id for r in records])
    return 100.0 * float((ranks == 1).float().mean())


def run_agent(store: Path, split: str, checkpoint: Path, out: Path, agent: list[str]) -> dict:
    if not (out / SUMMARY_FILE).is_file():  # a finished make-data run is reused
        code = make_data(["--store", str(store), "--split", split, "--checkpoint", str(checkpoint),
                          "--output_dir", str(out), *agent])
        if code != 0:
            sys.exit(code)
    counts = json.loads((out / SUMMARY_FILE).read_text())["counts"]
    sft = read_query_pairs(out / SFT_FILE)
    fixed = sum(row.origin == "low" for row in sft)
    queries = counts["queries"]
    return {"counts": counts, "d_sft": len(sft),
            "hard_query_t2i_r1_best_rewrite": 100.0 * (counts.get("high_quality", 0) + fixed) / queries,
            "low_quality_fixed": 100.0 * fixed / max(counts.get("low_quality", 0), 1)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", default="pref")
    parser.add_argument("--captioner-steps", type=int, default=900)
    parser.add_argument("--work", default="runs/rewriter_captioner_agent")
    args = parser.parse_args()
    work = Path(args.work) / f"seed{args.seed}"
    store = Path(args.work) / "store"
    if not store.exists():
        build_shapes_store(store, num_images=3000, seed=0, image_size=32, workers=1)
    retriever = train_retriever(store, work / "runs", args.seed)
    captioner = train_captioner(store, work / "captioner_runs", args.seed, args.captioner_steps)
    describe(store, args.split, captioner, work / "predict_runs")
    oracle = run_agent(store, args.split, retriever, work / "pairs_oracle", ["--agent", "scene_graph_oracle"])
    described = run_agent(store, args.split, retriever, work / "pairs_captioner",
                          ["--agent", "captioner_descriptions", "--descriptions_source", CAPTIONER])
    queries = oracle["counts"]["queries"]
    result = {
        "seed": args.seed, "split": args.split, "queries": queries,
        "store": "ShapesWorld 3000 images, 32 px, generator seed 0",
        "retriever": "vlm:model/clip_tiny.yaml, alt-text + gt short, 300 steps, batch 64",
        "captioner": f"captioner:model/sft_tiny.yaml + data/shapes_sft.yaml (dense), {args.captioner_steps} steps; "
                     "greedy, 64 new tokens, no shearing",
        "hard_query_t2i_r1_raw": 100.0 * oracle["counts"].get("high_quality", 0) / queries,
        "gt_short_t2i_r1_same_gallery": gt_short_recall(store, args.split, retriever),
        "captioner_description_t2i_r1_same_gallery": description_recall(store, args.split, retriever),
        "oracle": oracle, "captioner_descriptions": described,
        "defaults": "high_quality_rank 1, recall_k 5, max_turns 3, num_candidates 4, min_similarity 0.3, blur on"}
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(OUTPUT.read_text()) if OUTPUT.is_file() else {}
    previous[f"seed{args.seed}"] = result
    OUTPUT.write_text(json.dumps(previous, indent=2, sort_keys=True) + "\n")
    print(json.dumps({k: v for k, v in result.items() if "t2i" in k}, indent=1))
    print("oracle", oracle["hard_query_t2i_r1_best_rewrite"], "captioner", described["hard_query_t2i_r1_best_rewrite"])
