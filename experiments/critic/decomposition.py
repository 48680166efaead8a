"""Atomic decomposition on ShapesWorld gt dense captions (#12 item 1): precision and recall of the scene graph's
facts recovered by sentence splitting alone and by the rule-based decomposer, on the dense captions and on a
variant whose repeated subjects are pronouns; test split of three generated stores (generator seeds 0, 1, 2).
Writes docs/results/critic_decomposition.json (per seed, and mean ± sample std over the seeds).

    python experiments/critic/decomposition.py [--num-images 6000] [--seeds 0,1,2] [--work runs/critic_decomposition]
"""

import argparse
import json
import statistics
import sys
from pathlib import Path

from vlforge.common.shapes.build import build_shapes_store
from vlforge.critic.decompose_eval import DECOMPOSERS, VARIANTS
from vlforge.critic.decompose_eval import main as measure

OUTPUT = Path(__file__).resolve().parents[2] / "docs" / "results" / "critic_decomposition.json"

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-images", type=int, default=6000)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--work", default="runs/critic_decomposition")
    args = parser.parse_args()
    per_seed = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        store = Path(args.work) / f"shapes_seed{seed}"
        if not store.exists():
            build_shapes_store(store, num_images=args.num_images, seed=seed, image_size=32, workers=1)
        out = Path(args.work) / f"seed{seed}.json"
        if measure(["--store", str(store), "--split", "test", "--output", str(out)]) != 0:
            sys.exit(2)
        per_seed[f"seed{seed}"] = json.loads(out.read_text())
    summary = {}
    for variant in VARIANTS:
        for name in DECOMPOSERS:
            for metric in ("precision", "recall"):
                values = [r["results"][variant][name][metric] for r in per_seed.values()]
                spread = statistics.stdev(values) if len(values) > 1 else 0.0
                summary[f"{variant}/{name}/{metric}"] = {"mean": statistics.mean(values), "std": spread}
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(json.dumps({"num_images": args.num_images, "split": "test", "summary": summary,
                                  "per_seed": per_seed}, indent=2) + "\n")
    for key, value in summary.items():
        print(f"{key}: {value['mean']:.1f} ± {value['std']:.1f}")
