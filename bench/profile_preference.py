"""cProfile of vlforge's preference step (precomputed reference) and SFT step on bench/preference_peers.py's tiny
Qwen2-VL: where the preference step's extra time goes.

    python bench/profile_preference.py --out bench/results/profile_preference.txt
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import preference_peers  # noqa: E402
from preference_step import SIZES_TINY, build, pairs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--top", type=int, default=70)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    settings = argparse.Namespace(pairs_per_batch=4, warmup=0, steps=args.steps, workdir=Path("/tmp/vlforge-prof"))
    report = io.StringIO()
    for setup in ("vlforge_full_precomputed", "vlforge_sft"):
        captioner = build(SIZES_TINY, dry_run=True)
        data = pairs(4 * args.steps, SIZES_TINY["image_size"], 24)
        profile = cProfile.Profile()
        profile.enable()
        times = preference_peers.run_vlforge(setup, captioner, data, settings)
        profile.disable()
        stats = pstats.Stats(profile, stream=report)
        report.write(f"==== {setup}: step times {[round(t, 3) for t in times]} ====\n")
        stats.sort_stats("cumulative").print_stats(args.top)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report.getvalue())


if __name__ == "__main__":
    main()
