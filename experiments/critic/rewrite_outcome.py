"""The weak caption source of the critic-rewrite outcome on ShapesWorld (#12, measurable; docs/results.md):

    python experiments/critic/rewrite_outcome.py --store runs/store --split test --limit 200 --seed 0
    vlforge-critic predict --config critic:predict_tiny.yaml --data.init_args.store runs/store \
        --data.init_args.limit 200 --model.init_args.source corrupted ... (the critic's checkpoint and preset)
    vlforge-critic analyze --store runs/store --split test --limit 200 --source corrupted --output ...

This script writes the cheap weak source ``corrupted`` (``--source``): each image's gt dense caption with every shape
word swapped, with probability ``--rate`` (0.6), for another shape (CHAIR_i about 40 % on the test split; a swap may
land on another shape of the scene); ``--words colours_shapes`` swaps colour words too (the rewrite model's training
corruption, ``vlforge.critic.shapes_rewrite_data``).
"""

from __future__ import annotations

import argparse
import random

from vlforge.common.records import Caption
from vlforge.common.shapes.vocabulary import COLOURS, SHAPES
from vlforge.common.store import CaptionStore
from vlforge.critic.shapes_rewrite_data import corrupt_words

SOURCE = "corrupted"
WORDS = {"shapes": (SHAPES,), "colours_shapes": (COLOURS, SHAPES)}


def corrupt(store: str, split: str, limit: int, seed: int, rate: float, words: str = "shapes",
            source: str = SOURCE) -> int:
    with CaptionStore(store, readonly=False) as s:
        ids = s.ids(split)[:limit]
        captions = {}
        for image_id in ids:
            record = s.get(image_id)
            rng = random.Random(f"corrupt/{seed}/{image_id}")
            gt = record.captions_by(source="gt", kind="dense")[0].text
            captions[image_id] = [Caption(corrupt_words(gt, rng, rate, WORDS[words]), source, "dense",
                                          provenance={"from": "gt dense", "swapped": words, "swap_rate": rate,
                                                      "seed": seed})]
        return s.append_captions(captions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rate", type=float, default=0.6)
    parser.add_argument("--words", choices=sorted(WORDS), default="shapes",
                        help="which words are swapped (colours_shapes: the rewrite model's training corruption)")
    parser.add_argument("--source", default=SOURCE)
    args = parser.parse_args()
    added = corrupt(args.store, args.split, args.limit, args.seed, args.rate, args.words, args.source)
    print(f"{added} captions of {args.source!r} added")


if __name__ == "__main__":
    main()
