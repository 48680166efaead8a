"""Learning outcome (issue 5; issue 19 item 1): a tiny LLaVA-style captioner fine-tuned on the seed split's
ground-truth dense captions, on a vision tower pre-trained on the seed split's scene graphs and then frozen, grounds
its captions on held-out test images: low CHAIR_i and high colour-attribute accuracy.

A full-size outcome run (``outcome``: not in the default run, ``pytest -m outcome``): seed 0 of the recipe the plan
experiments/captioner/plans/grounding.yaml chose on the val split (docs/results.md, "Captioner", outcome 1), run
through experiments/run.py (vlforge-captioner pretrain-tower, fit, evaluate; one torch thread per call) and scored
on the first 200 test images, which played no part in choosing it. Targets CHAIR_i <= 20 % and colour accuracy
>= 80 %. About 15 minutes on an idle 2-core machine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PLAN = REPO / "experiments" / "captioner" / "plans" / "grounding.yaml"
RECIPE = ("tower2500", "sft_t2500_lr5e-4", "test_t2500_lr5e-4")  # the steps of the recipe chosen on val
CHAIR_I_MAX, COLOUR_MIN = 20.0, 80.0


@pytest.mark.outcome
@pytest.mark.timeout(3600)
def test_sft_captioner_on_a_pretrained_tower_reaches_the_grounding_targets_on_test(tmp_path: Path) -> None:
    command = [sys.executable, str(REPO / "experiments" / "run.py"), "run", str(PLAN), "--seeds", "0",
               "--steps", ",".join(RECIPE), "--runs-root", str(tmp_path)]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    seed = tmp_path / "captioner_grounding" / "seed0"
    shape_probe = json.loads((seed / RECIPE[0] / "probe.json").read_text())["curve"][-1]["shape"]
    test = json.loads((seed / RECIPE[2] / "metrics.json").read_text())
    assert test["split"] == "test" and test["last"]["num_images"] == 200
    assert shape_probe > 50.0  # the tower sees shapes (val images)
    assert test["last"]["chair_i"] <= CHAIR_I_MAX, test["last"]
    assert test["last"]["colour_accuracy"] >= COLOUR_MIN, test["last"]
