"""`vlforge-vlm score`: write the CLIP score of every caption into a store (vlforge.vlm.store_scoring).

    vlforge-vlm score --store data/shapesworld --checkpoint runs/vlm/version_0/checkpoints/last.ckpt \\
        [--source qwen ...] [--split pool] [--batch-size 64] [--rescore] [--device cuda]

``--checkpoint``: anything vlforge.vlm.loading.load_clip reads (a vlm run's checkpoint, a vlforge export folder,
an open_clip folder, or a weights file with ``--open-clip-model``). Prints the counted summary as one JSON line.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from vlforge.common.console import ToolParser


def build_parser() -> ToolParser:
    parser = ToolParser(prog="vlforge-vlm score", description="Write CLIP scores into a store's captions.")
    parser.add_argument("--store", required=True, help="the caption store (written in place)")
    parser.add_argument("--checkpoint", required=True,
                        help=".ckpt / DeepSpeed folder of a vlm run, vlforge export folder, open_clip folder or "
                             "weights file (with --open-clip-model)")
    parser.add_argument("--run_config", default=None,
                        help="the run's config.yaml when the checkpoint is not in <run>/checkpoints/")
    parser.add_argument("--open-clip-model", default=None, help="open_clip config name of a weights file")
    parser.add_argument("--source", action="append", help="score only this caption source (repeatable)")
    parser.add_argument("--split", default=None, help="score only this split")
    parser.add_argument("--batch-size", type=int, default=64, help="captions per forward pass and transaction")
    parser.add_argument("--rescore", action="store_true", help="recompute captions that have a clip_score")
    parser.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    return parser


def main(argv: Sequence[str]) -> int:
    """``vlforge-vlm score ...`` (a tool of vlforge.vlm.cli; the console reports mistakes in one line)."""
    args = build_parser().parse_args(argv)
    import torch

    from vlforge.vlm.loading import load_clip
    from vlforge.vlm.scoring import ClipScorer
    from vlforge.vlm.store_scoring import score_store

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = load_clip(args.checkpoint, args.run_config, open_clip_model=args.open_clip_model).to(device).eval()
    summary = score_store(args.store, ClipScorer(model, batch_size=args.batch_size), str(args.checkpoint),
                          sources=args.source, split=args.split, batch_size=args.batch_size, rescore=args.rescore)
    print(json.dumps(summary.to_dict()))
    return 0
