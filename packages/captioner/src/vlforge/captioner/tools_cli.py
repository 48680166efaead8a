"""The captioner's tools beside the LightningCLI subcommands (registered in vlforge.captioner.cli).

    vlforge-captioner generate --store data/shapesworld \\
        --config captioner:generation/shapes_tiny.yaml [--split pool] [--limit 100] [--batch-size 16] \\
        [--shear-tokens 8 | --no-shear] [--name NAME --source SOURCE --checkpoint CKPT]
    vlforge-captioner score --store data/shapesworld --source sft_own [--split pref]
    vlforge-captioner analyze --store data/shapesworld --out runs/analysis \\
        [--split pool] [--source NAME ...] [--top-k 20] [--clip-model vlforge-tiny-vit-64 --clip-checkpoint
        x.pt]

    vlforge-captioner export --checkpoint runs/x/checkpoints/last.ckpt --format hf --out captioner_hf

    vlforge-captioner evaluate --checkpoint runs/x/checkpoints --store data/shapesworld --split val \
        --format dense --limit 200 --out runs/x/eval_val [--top-k 10]
    vlforge-captioner pretrain-tower --store data/shapesworld --steps 2500 --eval-split val --out runs/tower

``export --format hf`` writes a transformers folder (``AutoModelForImageTextToText`` + ``AutoProcessor``, chat
template kept; vlforge.captioner.hf_export). ``evaluate`` writes metrics.json: per checkpoint the grounding
scores (``results``) and the statistics of the captions scored (``statistics``: lengths, words and content words,
as ``analyze`` computes them, and two example captions). ``generate`` runs every captioner of a generation config
in this process (resumable; for DDP over devices use ``vlforge-captioner predict``) and prints one JSON summary per
captioner; ``--name`` / ``--source`` / ``--checkpoint`` replace those of a config's one captioner (e.g. a
checkpoint of this run's SFT step in a plan); ``score`` writes each caption's CHAIR_i against the image's scene graph
into the store (vlforge.captioner.store_scoring); ``analyze`` writes analysis.json and PNG plots. The console prints
a user mistake as one line on stderr (exit code 2).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

from vlforge.common.console import ToolParser
from vlforge.common.errors import VLForgeError

PROG = "vlforge-captioner"


def _generate(args: argparse.Namespace) -> int:
    from vlforge.captioner.generation.run import generate_into_store
    from vlforge.captioner.generation.spec import load_generation_config

    config = load_generation_config(args.config)
    captioner = {k: v for k, v in (("name", args.name), ("source", args.source), ("checkpoint", args.checkpoint))
                 if v is not None}
    if captioner:
        if len(config.captioners) != 1:
            raise VLForgeError(f"--{next(iter(captioner))} replaces the captioner of a config with one; "
                               f"{args.config} has {len(config.captioners)}")
        config = dataclasses.replace(config, captioners=[dataclasses.replace(config.captioners[0], **captioner)])
    overrides = {
        "split": args.split,
        "limit": args.limit,
        "batch_size": args.batch_size,
        "shear_tokens": args.shear_tokens,
    }
    config = dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})
    if args.no_shear:
        config = dataclasses.replace(config, shear=False)
    for summary in generate_into_store(args.store, config):
        print(json.dumps(summary.to_dict()))
    return 0


def _analyze(args: argparse.Namespace) -> int:
    from vlforge.captioner.analysis import analyze

    report = analyze(
        args.store,
        args.out,
        split=args.split,
        sources=args.source,
        top_k=args.top_k,
        clip_model=args.clip_model,
        clip_checkpoint=args.clip_checkpoint,
    )
    print(json.dumps({"out": args.out, "sources": report["sources"]}))
    return 0


def _export(args: argparse.Namespace) -> int:
    from vlforge.captioner.hf_export import export_hf_captioner_checkpoint

    print(export_hf_captioner_checkpoint(args.checkpoint, args.out, args.run_config))
    return 0


def checkpoints_of(path: str) -> list[Path]:
    """``path`` itself (a .ckpt), or every ``step<N>.ckpt`` of a checkpoints folder in step order."""
    folder = Path(path)
    if not folder.is_dir() or folder.suffix == ".ckpt":
        if not folder.exists():
            raise VLForgeError(f"checkpoint {path} does not exist")
        return [folder]
    steps = [p for p in folder.glob("step*.ckpt") if p.stem[4:].isdigit()]
    if not steps:
        raise VLForgeError(f"checkpoint folder {path} holds no step<N>.ckpt")
    return sorted(steps, key=lambda p: int(p.stem[4:]))


def _evaluate(args: argparse.Namespace) -> int:
    from vlforge.captioner.analysis import caption_statistics
    from vlforge.captioner.evaluation import evaluate_captioner
    from vlforge.captioner.hf_export import captioner_from_checkpoint
    from vlforge.common.metrics import write_metrics

    checkpoints = checkpoints_of(args.checkpoint)
    tokens = args.max_new_tokens or (160 if args.format == "dense" else 60)
    results, statistics = {}, {}
    for position, checkpoint in enumerate(checkpoints, 1):
        captioner = captioner_from_checkpoint(checkpoint, args.run_config)
        evaluation = evaluate_captioner(captioner, args.store, split=args.split, caption_format=args.format,
                                        limit=args.limit, decoding={"max_new_tokens": tokens},
                                        batch_size=args.batch_size)
        summary = results[checkpoint.stem] = evaluation.summary()
        by_part = caption_statistics({"captions": evaluation.captions}, args.top_k)
        statistics[checkpoint.stem] = {**{part: values.get("captions") for part, values in by_part.items()},
                                       "examples": evaluation.captions[:2]}
        print(f"[{position}/{len(checkpoints)}] {checkpoint.stem}: " + json.dumps(summary), flush=True)
    write_metrics(args.out, {"split": args.split, "format": args.format, "limit": args.limit,
                             "max_new_tokens": tokens, "checkpoints": [str(c) for c in checkpoints],
                             "results": results, "last": results[checkpoints[-1].stem], "statistics": statistics})
    return 0


def _pretrain_tower(args: argparse.Namespace) -> int:
    from vlforge.captioner.patch_tower import pretrain_tower

    record = pretrain_tower(args.store, args.out, steps=args.steps, lr=args.lr, batch_size=args.batch_size,
                            seed=args.seed, base_preset=args.base_preset, train_split=args.train_split,
                            eval_split=args.eval_split, eval_limit=args.eval_limit, eval_every=args.eval_every)
    print(json.dumps({"out": args.out, "train_s": record["train_s"], "last": record["curve"][-1]}))
    return 0


def build_evaluate_parser() -> ToolParser:
    parser = ToolParser(prog=f"{PROG} evaluate", description="grounding of captioner checkpoints on a store split")
    parser.add_argument("--checkpoint", required=True, help="a captioner .ckpt, or a folder of step<N>.ckpt")
    parser.add_argument("--run_config", help="the run's config.yaml when the checkpoint is not in <run>/checkpoints/")
    parser.add_argument("--store", required=True)
    parser.add_argument("--split", required=True)
    parser.add_argument("--format", default="dense", help="the caption format prompted (default dense)")
    parser.add_argument("--limit", type=int, help="the first N images of the split (default: all)")
    parser.add_argument("--max-new-tokens", type=int, help="default 160 for dense, 60 otherwise")
    parser.add_argument("--batch-size", type=int, default=25)
    parser.add_argument("--top-k", type=int, default=10, help="most frequent words listed per checkpoint")
    parser.add_argument("--out", required=True, help="the folder of metrics.json")
    return parser


def build_pretrain_tower_parser() -> ToolParser:
    parser = ToolParser(prog=f"{PROG} pretrain-tower",
                        description="pre-train a LLaVA vision tower per patch on ShapesWorld scene graphs")
    parser.add_argument("--store", required=True)
    parser.add_argument("--out", required=True, help="folder of tower/, probe.json and preset.yaml")
    parser.add_argument("--steps", type=int, default=2500)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--base-preset", default="llava_small", help="a llava preset name or YAML")
    parser.add_argument("--train-split", default="seed")
    parser.add_argument("--eval-split", default="val", help="the probe's curve is measured here")
    parser.add_argument("--eval-limit", type=int, default=300)
    parser.add_argument("--eval-every", type=int, default=100)
    return parser


def evaluate_main(argv: Sequence[str]) -> int:
    """`vlforge-captioner evaluate ...` (a vlforge.common.console tool)."""
    return _evaluate(build_evaluate_parser().parse_args(argv))


def pretrain_tower_main(argv: Sequence[str]) -> int:
    """`vlforge-captioner pretrain-tower ...` (a vlforge.common.console tool)."""
    return _pretrain_tower(build_pretrain_tower_parser().parse_args(argv))


def build_generate_parser() -> ToolParser:
    parser = ToolParser(prog=f"{PROG} generate", description="run a generation config's captioners over a store split")
    parser.add_argument("--store", required=True)
    parser.add_argument("--config", required=True, help="generation YAML (or captioner:generation/<file>.yaml)")
    parser.add_argument("--split")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--shear-tokens", type=int)
    parser.add_argument("--no-shear", action="store_true")
    parser.add_argument("--name", help="the caption source (a config with one captioner)")
    parser.add_argument("--source", help="the model: preset:<name or YAML>, hub name or folder (one captioner)")
    parser.add_argument("--checkpoint", help="a captioner LitModule .ckpt loaded into it (one captioner)")
    return parser


def build_score_parser() -> ToolParser:
    parser = ToolParser(prog=f"{PROG} score",
                        description="write each caption's CHAIR_i against its image's scene graph into the store")
    parser.add_argument("--store", required=True, help="the caption store (written in place)")
    parser.add_argument("--source", action="append", required=True, help="a caption source to score (repeatable)")
    parser.add_argument("--split", help="only this split")
    parser.add_argument("--rescore", action="store_true", help="recompute captions that have a chair_i")
    return parser


def generate_main(argv: Sequence[str]) -> int:
    """`vlforge-captioner generate ...` (a vlforge.common.console tool)."""
    return _generate(build_generate_parser().parse_args(argv))


def score_main(argv: Sequence[str]) -> int:
    """`vlforge-captioner score ...` (a vlforge.common.console tool)."""
    from vlforge.captioner.store_scoring import score_chair

    args = build_score_parser().parse_args(argv)
    print(json.dumps(score_chair(args.store, args.source, split=args.split, rescore=args.rescore).to_dict()))
    return 0


def analyze_main(argv: Sequence[str]) -> int:
    """`vlforge-captioner analyze ...` (a vlforge.common.console tool)."""
    parser = ToolParser(prog=f"{PROG} analyze", description="caption statistics per source: JSON + PNG")
    parser.add_argument("--store", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--split")
    parser.add_argument("--source", action="append", help="a caption source to analyse (repeatable)")
    parser.add_argument("--top-k", type=int, default=20)
    parser.add_argument("--clip-checkpoint",
                        help="CLIP for CLIP scores: a weights file of --clip-model, a vlm run checkpoint, a vlforge "
                             "export folder or an open_clip folder (vlforge.vlm.loading.load_clip)")
    parser.add_argument("--clip-model", help="open_clip config name of a weights file, e.g. vlforge-tiny-vit-64")
    return _analyze(parser.parse_args(argv))


def export_main(argv: Sequence[str]) -> int:
    """`vlforge-captioner export ...` (a vlforge.common.console tool)."""
    parser = ToolParser(prog=f"{PROG} export", description="a trained captioner checkpoint as a transformers folder")
    parser.add_argument("--checkpoint", required=True, help="a captioner LitModule .ckpt")
    parser.add_argument("--format", required=True, choices=("hf",))
    parser.add_argument("--out", required=True, help="the folder to write")
    parser.add_argument("--run_config", help="the run's config.yaml when the checkpoint is not in <run>/checkpoints/")
    return _export(parser.parse_args(argv))
