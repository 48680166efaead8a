"""What the experiment runners share: one console step in its own process (one torch thread, output to a log
file, the runner stops with the log's path when the step fails) and the mean ± sample std of a figure over seeds."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path


def run_step(command: list[str], log: Path) -> None:
    """Run ``command`` with OMP/MKL at one thread, its output into ``log``; exit with the log's path on failure."""
    print("$", " ".join(command), flush=True)
    start = time.time()
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        code = subprocess.call(command, stdout=out, stderr=subprocess.STDOUT,
                               env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    if code:
        sys.exit(f"failed ({code}) after {time.time() - start:.0f} s, see {log}")
    print(f"  done in {time.time() - start:.0f} s", flush=True)


def mean_spread(values: list[float]) -> dict[str, float]:
    """``{"mean", "std" (sample; 0 for one value), "n"}``."""
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values)}
