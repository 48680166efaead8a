"""Run open_clip's own trainer (``python -m open_clip_train.main``) as the peer of a vlforge CLIP fit and read its log.

A model config that open_clip does not ship is registered for the run as a model-config JSON
(``open_clip.add_model_config``) by a two-line launcher, so both sides build the same architecture.
``read_log`` returns, per logged step, the step count, open_clip's mean step time since the previous log line
(``Batch (t)``, its meters reset at every log line) and the loss.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

LAUNCHER = ("import sys, open_clip; open_clip.add_model_config(sys.argv[1]); "
            "from open_clip_train.main import main; main(sys.argv[2:])")
LOG_LINE = re.compile(r"Train Epoch: \d+ \[\s*(\d+)/\d+ .*?Batch \(t\): ([0-9.]+),.*?Contrastive_loss: ([0-9.eE+-]+)")


def register_config(folder: Path, name: str, config: dict) -> Path:
    """Write ``config`` as ``folder/name.json`` (open_clip's model-config format) and return the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(config, indent=2) + "\n")
    return folder


def run_open_clip(config_dir: Path, train_args: list[str], logs: Path, name: str, threads: int,
                  timeout: float | None = None) -> Path:
    """Run open_clip_train.main with ``train_args`` (plus logging flags); return its out.log. Raises on failure."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    args = [*train_args, "--logs", str(logs), "--name", name, "--report-to", "", "--save-frequency", "0",
            "--zeroshot-frequency", "0", "--val-frequency", "0", "--seed", "0"]
    done = subprocess.run([sys.executable, "-c", LAUNCHER, str(config_dir), *args], env=env, capture_output=True,
                          text=True, timeout=timeout)
    log = logs / name / "out.log"
    if done.returncode != 0 or not log.is_file():
        raise RuntimeError(f"open_clip_train failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return log


def read_log(log: Path) -> list[dict[str, float]]:
    """``[{"samples": n, "step_s": mean step time since the last line, "loss": loss}]`` from an out.log."""
    return [{"samples": int(m[1]), "step_s": float(m[2]), "loss": float(m[3])}
            for m in LOG_LINE.finditer(log.read_text())]
