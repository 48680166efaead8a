"""bench/gpu_check.sh --dry-run: every part of the GPU check runs its code path on CPU at tiny sizes."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_gpu_check_dry_run_runs_every_part(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
               VLFORGE_WHEELS=str(tmp_path / "no-wheels"))
    done = subprocess.run(["bash", str(REPO / "bench" / "gpu_check.sh"), "--dry-run", "--out", str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    results = json.loads((tmp_path / "gpu_check.json").read_text())
    parts = results["parts"]
    assert {name: part["status"] for name, part in parts.items()} == {
        "clip": "ok", "caption": "ok", "preference": "ok", "deepspeed": "ok"}

    clip = parts["clip"]["result"]
    for side in ("vlforge", "open_clip"):
        assert clip[side]["samples_per_s"] > 0 and math.isfinite(clip[side]["last_loss"])
    assert clip["flops_per_sample"] > 0
    # both trainers start from the same kind of init on the same synthetic pairs: InfoNCE of 8 equal captions is ln 8
    assert abs(clip["vlforge"]["last_loss"] - clip["open_clip"]["last_loss"]) < 0.05

    caption = parts["caption"]["result"]
    assert caption["model"] == "qwen2_vl_2b (tiny config)" and caption["images"] == 4
    assert caption["identical_captions"] == 4  # fp32 greedy: batching must not change a caption

    preference = parts["preference"]["result"]
    assert preference["preference_step_s"] > 0 and preference["sft_step_s"] > 0

    stages = parts["deepspeed"]["result"]
    assert [s["stage"] for s in stages] == [2, 3]
    assert [s["zero_optimization"]["stage"] for s in stages] == [2, 3]
    assert all(s["max_abs_diff_export_vs_live"] == 0.0 for s in stages)  # fp32 export reloads bit for bit

    table = (tmp_path / "gpu_check.md").read_text().splitlines()
    assert len(table) == 2 + 5  # header + clip + caption + preference + two ZeRO stages
