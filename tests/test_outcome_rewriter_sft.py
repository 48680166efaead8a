"""Learning outcome (issue 14): a text-only rewriter fine-tuned (SFT, Eq. 1) on the stated-only oracle's query pairs
retrieves the right image of ShapesWorld's hard queries better than the raw queries, with the frozen retriever.

The rewriter's cheapest clear outcome, in the default run (``slow``): seed 0 of
experiments/rewriter/training_outcome.py --stated-only as docs/results.md ("Rewriter ... stated-only pairs") runs it,
through the SFT step — a 3000-image 32 px store, clip_tiny trained 300 steps, make-data on the pool split (2000
queries), sft_tiny.yaml 400 steps, greedy rewrites of the 312 test queries. Measured over seeds 0-2 (docs/results.md):
test R@10 +12.5 / +7.7 / +4.5 points over the raw queries, R@1 +1.3 / +0.6 / +2.9, median rank of the right image
59 -> 34 on seed 0. The test (seed 0) asks for +5 R@10, a lower median rank and no R@1 loss. About 3.5 minutes on
one core."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RUNNER = REPO / "experiments" / "rewriter" / "training_outcome.py"
R10_GAIN_MIN = 5.0


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_sft_on_stated_only_pairs_beats_raw_hard_queries(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    command = [sys.executable, str(RUNNER), "--seed", "0", "--stated-only", "--through", "sft",
               "--work", str(tmp_path / "work"), "--out", str(out)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    test = json.loads(out.read_text())["seed0"]["test"]
    assert test["queries"] == 312 and test["sft_empty_rewrites"] == 0
    raw, sft = test["ranks"]["raw"], test["ranks"]["sft"]
    assert sft["r@10"] - raw["r@10"] >= R10_GAIN_MIN, test["ranks"]
    assert sft["median_rank"] < raw["median_rank"], test["ranks"]
    assert test["sft"] >= test["raw"], (test["raw"], test["sft"])
