"""CLIP trained with query rewriting at p = 0.6 against the same training without it, same steps (query-rewriter
paper §3.5, #14 "Measurable"): hard-query and clean-query (gt short) T2I R@1 on the test split.

On the store of experiments/rewriter/captioner_agent.py (same --work): the frozen retriever (300 steps) builds query
pairs on the pool split with the scene-graph oracle (make-data, --max-queries); a tiny Llama rewriter is fine-tuned
with common.lm's SFTLitModule on each query's best-scored rewrite (--sft-rows pro: every D_PRO row's first candidate,
since on the 2120-image pool gallery few rewrites reach rank 1 and D_SFT stays small; --sft-rows sft: D_SFT only);
`vlforge-rewriter predict` rewrites the pool and test queries into the store; two CLIPs train from scratch with
`experiments/vlm/clip_query_rewriting.yaml` (gt short + hard queries, half and half), one with
`rewrite: {rewriter, probability: 0.6}`, one with `rewrite: null`; `vlforge-vlm evaluate --rewritten_queries` scores
both on the test split, and the frozen retriever too (what the rewriter alone does at retrieval time). Writes
docs/results/rewriter_clip_rewriting.json.

    python experiments/rewriter/clip_rewriting.py [--seed 0] [--max-queries 800] [--sft-steps 400]
        [--clip-steps 300] [--sft-rows pro] [--work runs/rewriter_captioner_agent] [--rewriter CKPT --out JSON]

``--rewriter`` takes a rewriter already trained (e.g. the SFT step of experiments/rewriter/training_outcome.py
--stated-only, on the same store and retriever recipe) instead of building pairs and fine-tuning one here.
"""

import argparse
import json
import sys
from pathlib import Path

import lightning as L
import torch
from query_pairs import train_retriever

from vlforge.common.cli import run_cli
from vlforge.common.console import console
from vlforge.common.lm.lit_sft import SFTLitModule
from vlforge.common.lm.model import GenerativeModel
from vlforge.common.metrics import read_metrics
from vlforge.common.shapes.build import build_shapes_store
from vlforge.rewriter.make_data import main as make_data
from vlforge.rewriter.pair_files import PRO_FILE, SFT_FILE, SUMMARY_FILE, read_query_pairs
from vlforge.rewriter.rewrite_batch import INSTRUCTION
from vlforge.vlm.cli import TOOLS as VLM_TOOLS

OUTPUT = Path(__file__).resolve().parents[2] / "docs" / "results" / "rewriter_clip_rewriting.json"
REWRITER = "rewriter_quick_sft"
DELTA = str(Path(__file__).resolve().parents[2] / "experiments" / "vlm" / "clip_query_rewriting.yaml")


def check(code: int) -> None:
    if code != 0:
        sys.exit(code)


def train_rewriter(pairs: Path, out: Path, seed: int, steps: int) -> Path:
    """SFT (Eq. 1) of a tiny Llama on query pairs: instruction = the query in the training instruction, response =
    its best-scored rewrite."""
    checkpoint = out / "sft.ckpt"
    if checkpoint.is_file():
        return checkpoint
    L.seed_everything(seed)
    examples = [{"instruction": INSTRUCTION.replace("{query}", row.query),
                 "response": max(row.candidates, key=lambda c: c.score).text} for row in read_query_pairs(pairs)]
    module = SFTLitModule(GenerativeModel("preset:llama_tiny", kind="causal_lm"), lr=2e-3, warmup_ratio=0.03)
    loader = torch.utils.data.DataLoader(examples, batch_size=32, shuffle=True, collate_fn=list)
    trainer = L.Trainer(max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu")
    trainer.fit(module, loader)
    out.mkdir(parents=True, exist_ok=True)
    trainer.save_checkpoint(checkpoint)
    return checkpoint


def rewrite(store: Path, split: str, checkpoint: Path, root: Path, name: str) -> None:
    check(run_cli("rewriter", ["predict", "--config", "rewriter:predict_tiny.yaml",
                               "--data.init_args.store", str(store), "--data.init_args.split", split,
                               "--model.init_args.checkpoint", str(checkpoint),
                               "--model.init_args.rewrite.name", name, "--trainer.enable_progress_bar", "false",
                               "--run_root", str(root)]))


def train_clip(store: Path, root: Path, seed: int, steps: int, probability: float | None, name: str) -> Path:
    checkpoint = root / "vlm" / "version_0" / "checkpoints" / "last.ckpt"
    if not checkpoint.is_file():
        rewrite_arg = (f"{{rewriter: {name}, probability: {probability}}}" if probability is not None else "null")
        check(run_cli("vlm", ["fit", "--config", "vlm:model/clip_tiny.yaml",
                              "--config", "vlm:data/shapes_alt_text_gt_short.yaml", "--config", DELTA,
                              "--data.init_args.store", str(store), "--data.init_args.num_workers", "0",
                              "--data.init_args.rewrite", rewrite_arg, "--trainer.max_steps", str(steps),
                              "--trainer.limit_val_batches", "0", "--trainer.num_sanity_val_steps", "0",
                              "--trainer.enable_progress_bar", "false", "--seed_everything", str(seed),
                              "--run_root", str(root)]))
    return checkpoint


def evaluate(store: Path, checkpoint: Path, out: Path, name: str) -> dict:
    check(console("vlm", VLM_TOOLS, ["evaluate", "--checkpoint", str(checkpoint), "--stores", f"[{store}]",
                                     "--split", "test", "--metrics", "[retrieval]", "--rewritten_queries", name,
                                     "--output_dir", str(out)]))
    result = read_metrics(out / "metrics.json")["results"][store.name]
    return {"clean_t2i_r1": result["retrieval"]["t2i_r1"],
            "hard_query_t2i_r1_raw": result["hard_queries"]["raw"]["t2i_r1"],
            "hard_query_t2i_r1_rewritten": result["hard_queries"]["rewritten"]["t2i_r1"],
            "num_queries": result["hard_queries"]["num_queries"],
            "num_fallback": result["hard_queries"]["num_fallback"]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-queries", type=int, default=800)
    parser.add_argument("--sft-steps", type=int, default=400)
    parser.add_argument("--clip-steps", type=int, default=300)
    parser.add_argument("--sft-rows", choices=("pro", "sft"), default="pro")
    parser.add_argument("--work", default="runs/rewriter_captioner_agent")
    parser.add_argument("--rewriter", default=None, help="a trained rewriter checkpoint (skips pairs and SFT here)")
    parser.add_argument("--out", default=str(OUTPUT), help="the JSON to add this seed to")
    args = parser.parse_args()
    torch.set_num_threads(1)
    work = Path(args.work) / f"seed{args.seed}"
    store = Path(args.work) / "store"
    if not store.exists():
        build_shapes_store(store, num_images=3000, seed=0, image_size=32, workers=1)
    retriever = train_retriever(store, work / "runs", args.seed)
    # the store keeps each rewriter's rewrites under its name, and predict resumes: one name per given rewriter
    name = f"rewriter_given_seed{args.seed}" if args.rewriter else REWRITER
    if args.rewriter:
        rewriter, about_rewriter = Path(args.rewriter), {"rewriter": f"given: {args.rewriter}"}
    else:
        pairs = work / "pairs_pool_oracle"
        if not (pairs / SUMMARY_FILE).is_file():
            check(make_data(["--store", str(store), "--split", "pool", "--checkpoint", str(retriever),
                             "--output_dir", str(pairs), "--pairs.max_queries", str(args.max_queries)]))
        rows = pairs / (PRO_FILE if args.sft_rows == "pro" else SFT_FILE)
        rewriter = train_rewriter(rows, work / f"rewriter_sft_{args.sft_rows}", args.seed, args.sft_steps)
        about_rewriter = {"d_sft_rows": len(read_query_pairs(pairs / SFT_FILE)),
                          "sft_rows": f"{args.sft_rows}: {len(read_query_pairs(rows))} rows",
                          "make_data": f"pool split, oracle agent, first {args.max_queries} queries",
                          "rewriter": f"preset:llama_tiny, SFTLitModule lr 2e-3, batch 32, {args.sft_steps} steps"}
    for split in ("pool", "test"):
        rewrite(store, split, rewriter, work / "rewrite_runs", name)
    runs = {"p0.6": 0.6, "no_rewriting": None}
    results = {run: evaluate(store, train_clip(store, work / f"clip_{run}", args.seed, args.clip_steps, p, name),
                             work / f"eval_{run}", name) for run, p in runs.items()}
    results["frozen_retriever"] = evaluate(store, retriever, work / "eval_frozen_retriever", name)
    entry = {"seed": args.seed, **about_rewriter,
             "clip": f"vlm:model/clip_tiny.yaml + experiments/vlm/clip_query_rewriting.yaml, {args.clip_steps} steps, "
                     "batch 64, from scratch", **results}
    output = Path(args.out)
    output.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(output.read_text()) if output.is_file() else {}
    previous[f"seed{args.seed}"] = entry
    output.write_text(json.dumps(previous, indent=2, sort_keys=True) + "\n")
    print(json.dumps(entry, indent=1))
