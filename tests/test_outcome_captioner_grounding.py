"""Learning outcome (issue 5): a tiny LLaVA-style captioner fine-tuned on the seed split's ground-truth dense
captions, on a vision tower pre-trained on the seed split's scene graphs and then frozen, grounds its captions:
low CHAIR_i and high colour-attribute accuracy on test images.

A full-size outcome run (``outcome``: not in the default run, ``pytest -m outcome``): the recipe of docs/results.md
("Captioner", outcome 1), seed 0 (tower 2,500 steps, SFT 900 steps, 200 test images), targets CHAIR_i <= 20 % and
colour accuracy >= 80 %. Two torch threads; 10-15 minutes on the 2-core machine. Through the shipped scripts:
experiments/captioner/vision_patch_probe.py --save, then experiments/captioner/shapes_outcomes.py sft
--vision-from ... --freeze-vision."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "experiments" / "captioner"
CHAIR_I_MAX, COLOUR_MIN = 20.0, 80.0


def _script(name: str, *args: str, threads: int) -> None:
    command = [sys.executable, str(SCRIPTS / name), *args, "--threads", str(threads)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]


def _grounding(tmp_path: Path, captioner_outcomes, tower_steps: int, sft_steps: int, images: int,
               threads: int) -> tuple[dict, float]:
    """The SFT run's last evaluation and the tower's last dense shape-probe accuracy."""
    out, tower = tmp_path / "sft_s0", tmp_path / "tower"
    store = captioner_outcomes.store_path(out)  # the script's 6,000-image store, built beside the run folder
    _script("vision_patch_probe.py", "--store", store, "--steps", str(tower_steps), "--seed", "0", "--save",
            str(tower), threads=threads)
    _script("shapes_outcomes.py", "sft", "--seed", "0", "--steps", str(sft_steps), "--checkpoint-every",
            str(sft_steps), "--eval-limit", str(images), "--vision-from", str(tower), "--freeze-vision", "--out",
            str(out), threads=threads)
    final = json.loads((out / "sft.json").read_text())["curve"][-1]
    assert final["step"] == sft_steps and final["num_images"] == images
    return final, json.loads((tower / "probe.json").read_text())["curve"][-1]["shape"]


@pytest.mark.outcome
@pytest.mark.timeout(3600)
def test_sft_captioner_on_a_pretrained_tower_reaches_the_grounding_targets(tmp_path: Path,
                                                                          captioner_outcomes) -> None:
    final, shape_probe = _grounding(tmp_path, captioner_outcomes, 2500, 900, 200, threads=2)
    assert shape_probe > 50.0  # the tower sees shapes
    assert final["chair_i"] <= CHAIR_I_MAX, final
    assert final["colour_accuracy"] >= COLOUR_MIN, final
