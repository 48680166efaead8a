"""`vlforge-critic make-data` (ShapesWorld): critic examples of a store split as LLaVA conversation JSON.

    vlforge-critic make-data --store data/shapes --split critic --output_dir data/critic_train \
        [--seed 0] [--describe_first true] [--observe_first true] [--captioner_sources '[llava_short]']

Writes ``critic.json`` (rows of ``llava_format``), ``images/`` (each image as stored) and ``summary.json`` (examples per
error type and verdict, skipped records with their ids), and prints a one-line summary. Records without a scene
graph are skipped and counted. ``--captioner_sources``: the sentences of a trained captioner's captions in the store,
judged against the scene graph, are examples too (error type "captioner"; the paper's active-learning step).
"""

from __future__ import annotations

import json
import random
import sys
from collections import Counter
from collections.abc import Sequence
from itertools import islice
from pathlib import Path
from typing import Any

from jsonargparse import ArgumentError, ArgumentParser

from vlforge.common.errors import VLForgeError
from vlforge.common.progress import track
from vlforge.common.store import CaptionStore
from vlforge.common.store.export_images import image_bytes, write_image
from vlforge.critic.llava_format import to_conversation
from vlforge.critic.shapes_critic_data import critic_examples

PROG = "vlforge-critic make-data"
CONVERSATIONS_FILE, SUMMARY_FILE, IMAGES_FOLDER = "critic.json", "summary.json", "images"


def make_shapes_critic_data(store: str, split: str, output_dir: str, seed: int = 0, balance: bool = True,
                            limit: int | None = None, describe_first: bool = False,
                            observe_first: bool = False,
                            captioner_sources: Sequence[str] = ()) -> dict[str, Any]:
    """Write the split's critic examples; returns the summary."""
    source = CaptionStore(store)
    out = Path(output_dir)
    (out / IMAGES_FOLDER).mkdir(parents=True, exist_ok=True)
    conversations, counts, skipped = [], Counter(), []
    total = len(source.ids(split=split)) if limit is None else min(limit, len(source.ids(split=split)))
    records = islice(source.iter_records(split=split), total)  # read to its end: the final status line is written
    for record in track(records, PROG, total=total, unit="images"):
        if "scene_graph" not in record.meta or "atomic_facts" not in record.meta:
            skipped.append({"image_id": record.image_id, "reason": "no scene graph"})
            continue
        image = f"{IMAGES_FOLDER}/{write_image(str(out / IMAGES_FOLDER), record, image_bytes(source, record))}"
        rng = random.Random(f"critic/{seed}/{record.image_id}")
        for k, example in enumerate(critic_examples(record, rng, balance, describe_first, observe_first,
                                                                captioner_sources)):
            conversations.append(to_conversation(f"{record.image_id}-{k}", image, example))
            counts[f"{example.error_type}/{'consistent' if example.consistent else 'inconsistent'}"] += 1
        counts["images"] += 1
    if not counts["images"]:
        raise VLForgeError(f"store {store}: split {split!r} has no ShapesWorld records")
    partial = out / f"{CONVERSATIONS_FILE}.partial"
    partial.write_text(json.dumps(conversations, ensure_ascii=False))
    partial.replace(out / CONVERSATIONS_FILE)
    summary = {"store": store, "split": split, "seed": seed, "balance": balance, "describe_first": describe_first,
               "observe_first": observe_first, "captioner_sources": list(captioner_sources),
               "examples": len(conversations),
               "counts": dict(sorted(counts.items())), "skipped": skipped}
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2))
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog=PROG, exit_on_error=False, allow_abbrev=False,
                            description="ShapesWorld critic examples as LLaVA conversation JSON.")
    parser.add_argument("--store", type=str, required=True)
    parser.add_argument("--split", type=str, required=True)
    parser.add_argument("--output_dir", type=str, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--balance", type=bool, default=True, help="as many true as false sentences per template")
    parser.add_argument("--limit", type=int | None, default=None, help="the first N records of the split")
    parser.add_argument("--describe_first", type=bool, default=False,
                        help="critiques open with the image's description")
    parser.add_argument("--observe_first", type=bool, default=False,
                        help="each check states what the image shows before it judges")
    parser.add_argument("--captioner_sources", type=list[str], default=[],
                        help="caption sources of a trained captioner whose sentences become examples too")
    try:
        try:
            args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
        except ArgumentError as err:
            raise VLForgeError(str(err).splitlines()[0]) from None
        summary = make_shapes_critic_data(args.store, args.split, args.output_dir, args.seed, args.balance,
                                          args.limit, args.describe_first, args.observe_first,
                                          args.captioner_sources)
    except VLForgeError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    consistent = sum(v for k, v in summary["counts"].items() if k.endswith("/consistent"))
    print(f"{PROG}: {summary['counts']['images']} images, {summary['examples']} examples ({consistent} consistent, "
          f"{summary['examples'] - consistent} inconsistent), skipped {len(summary['skipped'])}")
    return 0
