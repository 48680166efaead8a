"""The weak caption source of the critic-rewrite outcome on ShapesWorld (#12, measurable; docs/results.md):

    python experiments/critic/rewrite_outcome.py --store runs/store --split test --limit 200 --seed 0
    vlforge-critic predict --config critic:predict_tiny.yaml --data.init_args.store runs/store \
        --data.init_args.limit 200 --model.init_args.source corrupted ... (the critic's checkpoint and preset)
    vlforge-critic analyze --store runs/store --split test --limit 200 --source corrupted --output ...

This script writes the cheap weak source ``corrupted`` (no trained weak captioner here): each image's gt dense
caption with every shape word swapped, with probability ``--rate`` (0.6), for another shape (CHAIR_i about 40 %
on the test split; a swap may land on another shape of the scene).
"""

from __future__ import annotations

import argparse
import random
import re

from vlforge.common.records import Caption
from vlforge.common.shapes.vocabulary import SHAPES
from vlforge.common.store import CaptionStore

SOURCE = "corrupted"
_SHAPE = re.compile(rf"\b({'|'.join(SHAPES)})\b")


def corrupt_text(text: str, rng: random.Random, rate: float) -> str:
    return _SHAPE.sub(lambda m: rng.choice([s for s in SHAPES if s != m.group(1)]) if rng.random() < rate
                      else m.group(1), text)


def corrupt(store: str, split: str, limit: int, seed: int, rate: float) -> int:
    with CaptionStore(store, readonly=False) as s:
        ids = s.ids(split)[:limit]
        captions = {}
        for image_id in ids:
            record = s.get(image_id)
            rng = random.Random(f"corrupt/{seed}/{image_id}")
            gt = record.captions_by(source="gt", kind="dense")[0].text
            captions[image_id] = [Caption(corrupt_text(gt, rng, rate), SOURCE, "dense",
                                          provenance={"from": "gt dense", "shape_swap_rate": rate, "seed": seed})]
        return s.append_captions(captions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rate", type=float, default=0.6)
    args = parser.parse_args()
    print(f"{corrupt(args.store, args.split, args.limit, args.seed, args.rate)} captions of {SOURCE!r} added")


if __name__ == "__main__":
    main()
