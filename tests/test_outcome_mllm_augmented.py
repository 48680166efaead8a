"""Learning outcome (issue 6): the augmented CLIP (alt-text + the three captioners' sheared captions) beats the
alt-text baseline on clean-caption test T2I R@1 by at least 10 points, with the same optimizer steps.

Seed 0 of the main job exactly as shipped (experiments/shapes/mllm_augmented.yaml: world, three captioners'
SFT, captioning the 10k-image pool, both CLIP runs), into a temporary runs root; docs/results.md ("Main job")
gives the mean over 3 seeds. A full-size outcome run (``outcome``: not in the default run, ``pytest -m outcome``):
15-30 minutes on the 2-core machine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SHAPES = REPO / "experiments" / "shapes" / "mllm_augmented.yaml"
BAR = 10.0


@pytest.mark.outcome
@pytest.mark.timeout(3600)
def test_augmented_clip_beats_the_alt_text_baseline_by_ten_points(tmp_path: Path, mllm_runner) -> None:
    runs_root = tmp_path / "delta.yaml"
    runs_root.write_text(yaml.safe_dump({"runs_root": str(tmp_path / "runs")}))
    assert mllm_runner.main([str(SHAPES), str(runs_root), "--seed", "0"]) == 0
    results = json.loads((tmp_path / "runs" / "mllm_augmented" / "results.json").read_text())["results"]
    baseline, augmented = results["baseline"]["0"]["t2i_r1"], results["augmented"]["0"]["t2i_r1"]
    assert augmented - baseline >= BAR, f"augmented {augmented:.1f} vs baseline {baseline:.1f} T2I R@1"
