"""``generate``, ``analyze`` and ``export``: the captioner's tools beside the LightningCLI subcommands.

    python -m vlforge.captioner.tools_cli generate --store data/shapesworld \\
        --config captioner:generation/shapes_tiny.yaml [--split pool] [--limit 100] [--batch-size 16] \\
        [--shear-tokens 8 | --no-shear]
    python -m vlforge.captioner.tools_cli analyze --store data/shapesworld --out runs/analysis \\
        [--split pool] [--source NAME ...] [--top-k 20] [--clip-model vlforge-tiny-vit-64 --clip-checkpoint
        x.pt]

    vlforge-captioner export --checkpoint runs/x/checkpoints/last.ckpt --format hf --out captioner_hf

``export --format hf`` writes a transformers folder (``AutoModelForImageTextToText`` + ``AutoProcessor``, chat
template kept; vlforge.captioner.hf_export). ``generate`` runs every captioner of a generation config in this
process (resumable; for DDP over devices use ``vlforge-captioner predict``) and prints one JSON summary per
captioner; ``analyze`` writes analysis.json and PNG plots. A user mistake is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence

from vlforge.common.errors import VLForgeError
from vlforge.common.strict_argparse import StrictArgumentParser

PROG = "vlforge-captioner"
COMMANDS = ("generate", "analyze", "export")


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


def build_parser() -> argparse.ArgumentParser:
    parser = StrictArgumentParser(prog=PROG, description="caption generation into the store and analysis")
    commands = parser.add_subparsers(dest="command", required=True)
    generate = commands.add_parser("generate", help="run a generation config's captioners over a store split")
    generate.add_argument("--store", required=True)
    generate.add_argument(
        "--config", required=True, help="generation YAML (or captioner:generation/<file>.yaml)"
    )
    generate.add_argument("--split")
    generate.add_argument("--limit", type=int)
    generate.add_argument("--batch-size", type=int)
    generate.add_argument("--shear-tokens", type=int)
    generate.add_argument("--no-shear", action="store_true")
    generate.set_defaults(func=_generate)
    analysis = commands.add_parser("analyze", help="caption statistics per source: JSON + PNG")
    analysis.add_argument("--store", required=True)
    analysis.add_argument("--out", required=True)
    analysis.add_argument("--split")
    analysis.add_argument("--source", action="append", help="a caption source to analyse (repeatable)")
    analysis.add_argument("--top-k", type=int, default=20)
    analysis.add_argument("--clip-model", help="open_clip config name, e.g. vlforge-tiny-vit-64")
    analysis.add_argument("--clip-checkpoint", help="its weights (safetensors or torch state dict)")
    analysis.set_defaults(func=_analyze)
    export = commands.add_parser("export", help="a trained captioner checkpoint as a transformers folder")
    export.add_argument("--checkpoint", required=True, help="a captioner LitModule .ckpt")
    export.add_argument("--format", required=True, choices=("hf",))
    export.add_argument("--out", required=True, help="the folder to write")
    export.add_argument("--run_config",
                        help="the run's config.yaml when it is not in a parent folder of the checkpoint")
    export.set_defaults(func=_export)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except VLForgeError as err:
        print(f"{PROG} {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
