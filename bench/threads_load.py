"""Speed on a shared machine: vlforge's preference step (precomputed reference, bench/preference_peers.py's tiny
Qwen2-VL) with 1 and 2 torch threads, alone and beside one competing CPU-bound process (a Python busy loop),
interleaved rounds, each run a fresh process. The ratio loaded / alone per thread count shows which setting keeps
its speed when a core is taken.

    python bench/threads_load.py --rounds 3 --out bench/results/threads_load.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from bench_report import write_report

BENCH = Path(__file__).resolve().parent


def step_time(threads: int, args) -> float:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    done = subprocess.run([sys.executable, str(BENCH / "preference_peers.py"), "--one-run", args.setup, "--out", "-",
                           "--threads", str(threads), "--warmup", "2", "--steps", str(args.steps), "--workdir",
                           str(args.workdir)], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])["step_s"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--setup", default="vlforge_full_precomputed")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/vlforge-threads-load"))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    rounds = []
    for index in range(args.rounds):
        result = {"load_before": os.getloadavg()[0]}
        for competitor in ((False, True) if index % 2 == 0 else (True, False)):
            busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if competitor else None
            try:
                for threads in ((1, 2) if index % 2 == 0 else (2, 1)):
                    result[f"threads{threads}_{'loaded' if competitor else 'alone'}"] = step_time(threads, args)
            finally:
                if busy is not None:
                    busy.kill()
                    busy.wait()
        result["load_after"] = os.getloadavg()[0]
        print(json.dumps(result), flush=True)
        rounds.append(result)
    keys = [k for k in rounds[0] if k.startswith("threads")]
    summary = {k: statistics.median(r[k] for r in rounds) for k in keys}
    for threads in (1, 2):
        ratios = [r[f"threads{threads}_loaded"] / r[f"threads{threads}_alone"] for r in rounds]
        summary[f"threads{threads}_loaded_over_alone"] = {"median": statistics.median(ratios), "min": min(ratios),
                                                          "max": max(ratios)}
    write_report(args.out, rounds, summary)


if __name__ == "__main__":
    main()
