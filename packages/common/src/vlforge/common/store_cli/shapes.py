"""`vlforge-store shapes STORE --num-images N --seed S [--image-size PX] [--workers W] [--set KNOB=VALUE ...]
[--json]`: generate the ShapesWorld embedded dataset into a caption store (created if absent)."""

from __future__ import annotations

import argparse
import json
import time

from vlforge.common.errors import VLForgeError
from vlforge.common.shapes.config import ShapesWorldConfig

DESCRIPTION = """\
Generate ShapesWorld (DESIGN.md section 5) into STORE: deterministic by --seed (same seed, same bytes,
whatever --workers), every caption kind per image (gt short/descriptive/dense, alt_text, negatives,
queries), scene graphs, atomic facts and QA pairs in each record's meta, splits
pool/seed/pref/critic/val/test.
Knobs (--set NAME=VALUE, VALUE parsed as JSON when it can be):
  """ + ", ".join(f for f in ShapesWorldConfig.__dataclass_fields__ if f != "image_size") + """
  e.g. --set alt_mismatch_rate=0.3 --set 'split_fractions={"pool": 0.8, "val": 0.1, "test": 0.1}'"""


def _knob(text: str) -> tuple[str, object]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        return name.strip(), json.loads(value)
    except json.JSONDecodeError:
        return name.strip(), value


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("shapes", help="generate the ShapesWorld embedded dataset",
                            description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("store", help="the store directory (created if it does not exist)")
    parser.add_argument("--num-images", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--image-size", type=int, default=64,
                        help="image side in pixels, 32..448 (default 64)")
    parser.add_argument("--workers", type=int, default=None,
                        help="generator processes (default: the available CPUs for 2000 images or more)")
    parser.add_argument("--batch-size", type=int, default=1000,
                        help="records per store transaction (default 1000)")
    parser.add_argument("--set", type=_knob, action="append", default=[], metavar="KNOB=VALUE", dest="knobs",
                        help="override a generator knob (repeatable)")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    parser.set_defaults(func=run_shapes)


def run_shapes(args: argparse.Namespace) -> int:
    from vlforge.common.shapes.build import build_shapes_store

    knobs = dict(args.knobs)
    if "image_size" in knobs:
        raise VLForgeError("set the image size with --image-size, not --set image_size=")
    if "split_fractions" in knobs and not isinstance(knobs["split_fractions"], dict):
        raise VLForgeError(f"split_fractions must be a JSON object, got {knobs['split_fractions']!r}")
    for name in ("shapes", "colours"):
        if isinstance(knobs.get(name), list):
            knobs[name] = tuple(knobs[name])
    start = time.perf_counter()
    counts = build_shapes_store(args.store, args.num_images, args.seed, image_size=args.image_size,
                                workers=args.workers, batch_size=args.batch_size, **knobs)
    seconds = time.perf_counter() - start
    summary = {"store": args.store, "num_images": args.num_images, "seed": args.seed,
               "image_size": args.image_size, "images": counts["images"], "captions": counts["captions"],
               "splits": counts["splits"], "seconds": round(seconds, 2)}
    if args.json:
        print(json.dumps(summary), flush=True)
    else:
        splits = ", ".join(f"{k} {v}" for k, v in sorted(counts["splits"].items()))
        print(f"ShapesWorld seed {args.seed}, {args.image_size} px: {counts['images']} images, "
              f"{counts['captions']} captions in {args.store} ({splits}) in {seconds:.1f} s", flush=True)
    return 0
