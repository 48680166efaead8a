"""``generate``, ``analyze`` and ``export``: the captioner's tools beside the LightningCLI subcommands.

    vlforge-captioner generate --store data/shapesworld \\
        --config captioner:generation/shapes_tiny.yaml [--split pool] [--limit 100] [--batch-size 16] \\
        [--shear-tokens 8 | --no-shear]
    vlforge-captioner analyze --store data/shapesworld --out runs/analysis \\
        [--split pool] [--source NAME ...] [--top-k 20] [--clip-model vlforge-tiny-vit-64 --clip-checkpoint
        x.pt]

    vlforge-captioner export --checkpoint runs/x/checkpoints/last.ckpt --format hf --out captioner_hf

``export --format hf`` writes a transformers folder (``AutoModelForImageTextToText`` + ``AutoProcessor``, chat
template kept; vlforge.captioner.hf_export). ``generate`` runs every captioner of a generation config in this
process (resumable; for DDP over devices use ``vlforge-captioner predict``) and prints one JSON summary per
captioner; ``analyze`` writes analysis.json and PNG plots. All three are registered in vlforge.captioner.cli; the
console prints a user mistake as one line on stderr (exit code 2).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Sequence

from vlforge.common.console import ToolParser

PROG = "vlforge-captioner"


def _generate(args: argparse.Namespace) -> int:
    from vlforge.captioner.generation.run import generate_into_store
    from vlforge.captioner.generation.spec import load_generation_config

    config = load_generation_config(args.config)
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


def generate_main(argv: Sequence[str]) -> int:
    """`vlforge-captioner generate ...` (a vlforge.common.console tool)."""
    parser = ToolParser(prog=f"{PROG} generate", description="run a generation config's captioners over a store split")
    parser.add_argument("--store", required=True)
    parser.add_argument("--config", required=True, help="generation YAML (or captioner:generation/<file>.yaml)")
    parser.add_argument("--split")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--shear-tokens", type=int)
    parser.add_argument("--no-shear", action="store_true")
    return _generate(parser.parse_args(argv))


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
