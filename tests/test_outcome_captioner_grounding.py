"""Learning outcome (issue 5): a tiny LLaVA-style captioner fine-tuned on the seed split's ground-truth dense
captions reaches CHAIR_i <= 20 % and colour-attribute accuracy >= 80 % on held-out images.

The recipe of docs/results.md ("Captioner", outcome 1), seed 0, through the shipped scripts: the llava_small vision
tower pre-trained on the seed split's scene graphs (per-patch colour and shape, 2,500 steps,
experiments/captioner/vision_patch_probe.py --save), then frozen while the projector and LM are fine-tuned 900
steps on the dense captions (experiments/captioner/shapes_outcomes.py sft --vision-from ... --freeze-vision);
greedy captions of the first 200 test images. Two torch threads; several minutes on the 2-core machine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "experiments" / "captioner"
CHAIR_I_MAX, COLOUR_MIN = 20.0, 80.0


def _script(name: str, *args: str) -> None:
    command = [sys.executable, str(SCRIPTS / name), *args, "--threads", "2"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_sft_captioner_on_a_pretrained_tower_reaches_the_grounding_targets(tmp_path: Path,
                                                                          captioner_outcomes) -> None:
    out, tower = tmp_path / "sft_s0", tmp_path / "tower"
    store = captioner_outcomes.store_path(out)  # the script's 6,000-image store, built beside the run folder
    _script("vision_patch_probe.py", "--store", store, "--steps", "2500", "--seed", "0", "--save", str(tower))
    assert json.loads((tower / "probe.json").read_text())["curve"][-1]["shape"] > 50.0  # the tower sees shapes
    _script("shapes_outcomes.py", "sft", "--seed", "0", "--steps", "900", "--checkpoint-every", "900",
            "--vision-from", str(tower), "--freeze-vision", "--out", str(out))
    final = json.loads((out / "sft.json").read_text())["curve"][-1]
    assert final["step"] == 900 and final["num_images"] == 200
    assert final["chair_i"] <= CHAIR_I_MAX, final
    assert final["colour_accuracy"] >= COLOUR_MIN, final
