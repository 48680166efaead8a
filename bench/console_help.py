"""Wall time of `vlforge-<package> --help` for every console script: this tree against a baseline tree, interleaved.

Each run is a fresh interpreter doing what the console script does (`from <module> import main; main()` with
`sys.argv = [prog, "--help"]`, the entry point read from the package's pyproject.toml), with PYTHONPATH set to the
tree's `packages/*/src`. Runs alternate between the trees so that the machine's changing load hits both alike.
Writes medians, all samples, the load average before and after, and the ratio baseline / this tree as JSON.

    python bench/console_help.py --repeats 5 --baseline /work/main --out docs/results/console_help.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("common", "vlm", "captioner", "critic", "rewriter")


def consoles(tree: Path) -> dict[str, str]:
    """`vlforge-<name>` -> `module:function` of every console script the tree's packages declare."""
    found: dict[str, str] = {}
    for package in PACKAGES:
        project = tomllib.loads((tree / "packages" / package / "pyproject.toml").read_text())["project"]
        found.update(project.get("scripts", {}))
    return found


def help_seconds(tree: Path, prog: str, entry: str) -> float:
    module, function = entry.split(":")
    script = f"import sys; sys.argv = [{prog!r}, '--help']; from {module} import {function}; {function}()"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(tree / "packages" / p / "src") for p in PACKAGES)}
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - start
    if result.returncode != 0 or prog not in result.stdout:
        raise SystemExit(f"{prog} --help failed in {tree}: {result.stderr[-500:]}")
    return elapsed


def _commit(tree: Path) -> str:
    result = subprocess.run(["git", "-C", str(tree), "rev-parse", "HEAD"], capture_output=True, text=True)
    return result.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline", type=Path, default=None, help="another checkout to compare against")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    trees = {"this": ROOT, **({"baseline": args.baseline.resolve()} if args.baseline else {})}
    scripts = consoles(ROOT)
    samples: dict[str, dict[str, list[float]]] = {name: {prog: [] for prog in scripts} for name in trees}
    load_before = os.getloadavg()
    for _ in range(args.repeats):
        for prog, entry in scripts.items():
            for name, tree in trees.items():
                samples[name][prog].append(help_seconds(tree, prog, entry))
    medians = {name: {prog: statistics.median(v) for prog, v in by_prog.items()} for name, by_prog in samples.items()}
    report = {
        "command": " ".join(["python", *sys.argv]),
        "commits": {name: _commit(tree) for name, tree in trees.items()},
        "repeats": args.repeats,
        "cpu_count": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "median_seconds": medians,
        "samples_seconds": samples,
    }
    if "baseline" in trees:
        report["baseline_over_this"] = {p: medians["baseline"][p] / medians["this"][p] for p in scripts}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({"median_seconds": medians, "baseline_over_this": report.get("baseline_over_this")}, indent=1))


if __name__ == "__main__":
    main()
