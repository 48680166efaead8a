"""The end of an interleaved benchmark: the load range over its rounds and one JSON report (command, rounds,
summary) written to ``out`` and the summary printed. Imported by the scripts beside it (bench/ is their sys.path[0])."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def write_report(out: Path, rounds: list[dict], summary: dict) -> None:
    """Add the rounds' load range (from each round's ``load_before`` / ``load_after``) to ``summary``, write the
    report to ``out`` and print the summary."""
    summary["load_range"] = [min(min(r["load_before"], r["load_after"]) for r in rounds),
                             max(max(r["load_before"], r["load_after"]) for r in rounds)]
    report = {"command": " ".join(sys.argv), "rounds": rounds, "summary": summary}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
