"""Atomic decomposition on ShapesWorld gt dense captions (#12 item 1): precision and recall of the scene graph's
facts recovered by sentence splitting alone and by the rule-based decomposer, on the dense captions and on a
variant whose repeated subjects are pronouns. Writes docs/results/critic_decomposition.json.

    python experiments/critic/decomposition.py [--num-images 6000] [--seed 0]
"""

import argparse
import sys
import tempfile
from pathlib import Path

from vlforge.common.shapes.build import build_shapes_store
from vlforge.critic.decompose_eval import main as measure

OUTPUT = Path(__file__).resolve().parents[2] / "docs" / "results" / "critic_decomposition.json"

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-images", type=int, default=6000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        store = Path(folder) / "shapes"
        build_shapes_store(store, num_images=args.num_images, seed=args.seed, image_size=32, workers=1)
        sys.exit(measure(["--store", str(store), "--split", "test", "--output", str(OUTPUT)]))
