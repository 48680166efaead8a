"""Learning outcome (issue 4): with the same optimizer steps and batch size, a tiny CLIP trained on alt-text + the
ground-truth short captions beats alt-text alone on clean-caption retrieval R@1, both directions, by >= 10 points.

Seed 0 of the plan behind docs/results.md ("vlforge-vlm", outcome 1): experiments/vlm/plans/caption_mix.yaml run by
experiments/run.py (vlforge-vlm fit per arm, vlforge-vlm evaluate on the held-out test split of a 3000-image
ShapesWorld store), one torch thread per call as the plan says."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
PLAN = REPO / "experiments" / "vlm" / "plans" / "caption_mix.yaml"


@pytest.mark.slow
def test_gt_short_captions_beat_alt_text_alone_on_clean_retrieval(tmp_path):
    command = [sys.executable, str(REPO / "experiments" / "run.py"), "run", str(PLAN), "--seeds", "0",
               "--runs-root", str(tmp_path)]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    seed = tmp_path / "vlm_caption_mix" / "seed0"
    alt_only, with_gt = (json.loads((seed / step / "metrics.json").read_text())["results"]["store"]["retrieval"]
                         for step in ("alt_text_eval", "alt_text_gt_short_eval"))
    for metric in ("t2i_r1", "i2t_r1"):
        assert with_gt[metric] >= alt_only[metric] + 10.0, (metric, alt_only[metric], with_gt[metric])
