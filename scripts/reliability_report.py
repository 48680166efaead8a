"""Run the fault-injection and bad-input suites and write what they tried (and their wall time) to
docs/results/reliability.json.

    OMP_NUM_THREADS=1 python scripts/reliability_report.py [--seed 16] [--out docs/results/reliability.json]

Runs pytest on tests/faults (SIGKILL + resume, damaged data.mdb, concurrent writers, property-based tests) and
packages/common/tests/test_store_reliability.py (one reproduction per reported bad input); every fault test appends
what it injected to a JSON-lines log, summed here by kind. The figures in docs/reliability.md come from this file.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SUITES = ["tests/faults", "packages/common/tests/test_store_reliability.py"]
PROPERTY_EXAMPLES = 25  # tests/faults/test_properties.py default (VLFORGE_PROPERTY_EXAMPLES)
# examples per property test, as test_properties.py sets them: jsonl, cc3m, shear, sentences, bytes
PROPERTY_MULTIPLIERS = (1, 1, 8, 8, 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--seed", type=int, default=16, help="seed of the kill points and damage offsets")
    parser.add_argument("--out", default=str(REPO / "docs" / "results" / "reliability.json"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        log, junit = Path(tmp) / "faults.jsonl", Path(tmp) / "junit.xml"
        env = dict(os.environ, VLFORGE_FAULTS_LOG=str(log), VLFORGE_FAULTS_SEED=str(args.seed),
                   VLFORGE_PROPERTY_EXAMPLES=str(PROPERTY_EXAMPLES))
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "pytest", *SUITES, "-q", "-p", "no:cacheprovider",
                               f"--junitxml={junit}"], cwd=REPO, env=env)
        wall_seconds = round(time.perf_counter() - start)
        rows = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
        outcomes = _outcomes(junit)
    by_kind: dict[tuple[str, str], collections.Counter] = collections.defaultdict(collections.Counter)
    for row in rows:
        counts = {k: v for k, v in row.items() if isinstance(v, int) and k not in ("kind", "what", "test")}
        by_kind[(row["kind"], row["what"])].update(counts)
    faults = [{"kind": kind, "what": what, **dict(sorted(c.items()))} for (kind, what), c in sorted(by_kind.items())]
    result = {
        "command": "python scripts/reliability_report.py --seed " + str(args.seed),
        "seed": args.seed,
        "pytest_exit_status": proc.returncode,
        "wall_seconds": wall_seconds,
        "tests": outcomes,
        "faults": faults,
        "totals": {"faults_injected": sum(f.get("faults", 0) for f in faults),
                   "records_lost": sum(f.get("records_lost", 0) for f in faults),
                   "records_duplicated": sum(f.get("records_duplicated", 0) for f in faults)},
        "bad_inputs": {"reproduction_cases": outcomes["by_file"].get("test_store_reliability.py", 0),
                       "property_tests": len(PROPERTY_MULTIPLIERS),
                       "property_examples": PROPERTY_EXAMPLES * sum(PROPERTY_MULTIPLIERS)},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["totals"]), f"-> {out}")
    return proc.returncode


def _outcomes(junit: Path) -> dict:
    counts: collections.Counter = collections.Counter()
    by_file: collections.Counter = collections.Counter()
    if junit.exists():
        for case in ET.parse(junit).iter("testcase"):
            kinds = {child.tag for child in case}
            outcome = ("failed" if kinds & {"failure", "error"} else
                       "xfailed" if "skipped" in kinds and "xfail" in ET.tostring(case, encoding="unicode") else
                       "skipped" if "skipped" in kinds else "passed")
            counts[outcome] += 1
            by_file[case.get("classname", "").rsplit(".", 1)[-1] + ".py"] += 1
    return {**dict(counts), "by_file": dict(by_file)}


if __name__ == "__main__":
    sys.exit(main())
