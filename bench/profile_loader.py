"""cProfile of one shuffled epoch of each loader in bench/loader_peers.py (0 workers, so all work is in-process):
where an epoch's time goes, LMDB CaptionDataset against the folder + JSON list and WebDataset shards.

    python bench/profile_loader.py --workdir /tmp/vlforge-loader-peers --out bench/results/profile_loader.txt
(after bench/loader_peers.py has built the store and its exports in --workdir)
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loader_peers import FORMATS, build_loader  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/vlforge-loader-peers"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--top", type=int, default=14)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    report = io.StringIO()
    for fmt in FORMATS:
        loader = build_loader(fmt, args.workdir, args.workdir / "store", 0, 64)
        profile = cProfile.Profile()
        profile.enable()
        for _ in loader:
            pass
        profile.disable()
        stats = pstats.Stats(profile, stream=report)
        report.write(f"==== {fmt}: total {stats.total_tt:.2f} s (profiled) ====\n")
        stats.sort_stats("tottime").print_stats(args.top)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report.getvalue())
    print(report.getvalue())


if __name__ == "__main__":
    main()
