"""Critic-rewrite outcome on ShapesWorld (#12, measurable): CHAIR_i and object coverage of a weak caption source
before and after `vlforge-critic predict`.

    python experiments/critic/rewrite_outcome.py corrupt --store runs/store --split test --limit 200 --seed 0
    vlforge-critic predict --config critic:predict_tiny.yaml --data.init_args.store runs/store \
        --data.init_args.limit 200 --model.init_args.source corrupted ... (the critic's checkpoint and preset)
    python experiments/critic/rewrite_outcome.py measure --store runs/store --split test --limit 200 \
        --output docs/results/critic_rewrite_s0.json

``corrupt`` writes the cheap weak source ``corrupted`` (no trained weak captioner here): each image's gt dense
caption with every shape word swapped, with probability ``--rate`` (0.6), for another shape (CHAIR_i about 40 %
on the test split; a swap may land on another shape of the scene). ``measure`` reports, per
source (corrupted, corrupted+critic, gt): CHAIR_i / CHAIR_s (common.metrics.chair, ShapesWorld table), object
coverage = the share of an image's scene shapes that its caption names (mean over images), and mean words.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

from vlforge.common.metrics.chair import chair, object_mentions, scene_objects
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


def measure(store: str, split: str, limit: int, sources: list[str]) -> dict:
    out = {}
    with CaptionStore(store, readonly=True) as s:
        records = [s.get(i) for i in s.ids(split)[:limit]]
    for source in sources:
        texts, objects, coverage, words = [], [], [], []
        for record in records:
            found = record.captions_by(source=source, kind="dense")
            if not found:
                continue
            scene = set(scene_objects(record.meta["scene_graph"]))
            texts.append(found[0].text)
            objects.append(scene)
            coverage.append(len(scene & set(object_mentions(found[0].text))) / len(scene))
            words.append(len(found[0].text.split()))
        if not texts:
            out[source] = {"images": 0}
            continue
        result = chair(texts, objects)
        out[source] = {"images": len(texts), "chair_i": result.chair_i, "chair_s": result.chair_s,
                       "object_coverage": 100.0 * sum(coverage) / max(1, len(coverage)),
                       "mean_words": sum(words) / max(1, len(words))}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("corrupt", "measure"))
    parser.add_argument("--store", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rate", type=float, default=0.6)
    parser.add_argument("--sources", nargs="+", default=[SOURCE, f"{SOURCE}+critic", "gt"])
    parser.add_argument("--output")
    args = parser.parse_args()
    if args.command == "corrupt":
        print(f"{corrupt(args.store, args.split, args.limit, args.seed, args.rate)} captions of {SOURCE!r} added")
        return
    result = {"settings": vars(args), "sources": measure(args.store, args.split, args.limit, args.sources)}
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(result, indent=2))
    print(json.dumps(result["sources"], indent=2))


if __name__ == "__main__":
    main()
