"""Exact resume of every shipped data module: a console fit killed with SIGKILL after its step-K checkpoint and
resumed with ``--ckpt_path last`` ends with the same weights as the same fit run uninterrupted (bit for bit).

One case per package's data module: vlm's ContrastiveDataModule (CLIP and BLIP share it), the captioner's SFT and
preference data modules. Each fit crosses an epoch boundary after the kill, so both the mid-epoch position and the
next epoch's order are exercised."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from vlforge.common.shapes.build import build_shapes_store

KILL_AFTER, STEPS = 3, 9
CASES = {
    "vlm_contrastive": ("vlforge.vlm.cli", ["vlm:model/clip_tiny.yaml", "vlm:data/shapes_alt_text_gt_short.yaml"],
                        {"batch_size": 16, "val_split": None, "test_split": None}),
    "captioner_sft": ("vlforge.captioner.cli", ["captioner:model/sft_tiny.yaml", "captioner:data/shapes_sft.yaml"],
                      {"batch_size": 8, "val_split": None, "train_limit": 48}),
    "captioner_preference": ("vlforge.captioner.cli", ["captioner:model/preference_tiny.yaml",
                                                       "captioner:data/shapes_preference.yaml"],
                             {"batch_size": 8, "train_limit": 48}),
}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("resume") / "store"
    build_shapes_store(path, 240, seed=0, image_size=32, workers=1,
                       split_fractions={"pool": 0.4, "seed": 0.25, "pref": 0.25, "val": 0.05, "test": 0.05})
    return str(path)


def _command(case: str, store: str, root: Path, tmp_path: Path) -> list[str]:
    module, configs, data = CASES[case]
    delta = tmp_path / "delta.yaml"
    delta.write_text(yaml.safe_dump({
        "data": {"init_args": {"store": store, "num_workers": 0, **data}},
        "trainer": {"max_steps": STEPS, "limit_val_batches": 0, "enable_progress_bar": False,
                    "enable_model_summary": False,
                    "callbacks": [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                                   "init_args": {"every_n_train_steps": KILL_AFTER, "save_last": True,
                                                 "save_top_k": -1, "filename": "{step}"}}]},
    }))
    args = [a for c in configs for a in ("--config", c)]
    return [sys.executable, "-m", module, "fit", *args, "--config", str(delta), "--seed_everything", "0",
            "--run_root", str(root)]


def _checkpoints(root: Path) -> Path:
    """The run folder's checkpoints (<run_root>/<package>/version_0/checkpoints), once it exists."""
    found = list(root.glob("*/version_*/checkpoints"))
    return found[0] if found else root / "none"


def _weights(root: Path) -> dict:
    state = torch.load(_checkpoints(root) / "last.ckpt", weights_only=True)
    assert state["global_step"] == STEPS
    return state["state_dict"]


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_fit_killed_after_k_steps_and_resumed_equals_an_uninterrupted_fit(case, store, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    straight = tmp_path / "straight"
    done = subprocess.run(_command(case, store, straight, tmp_path), env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]

    killed = tmp_path / "killed"
    process = subprocess.Popen(_command(case, store, killed, tmp_path), env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    while process.poll() is None and not ((_checkpoints(killed) / "last.ckpt").exists()
                                          and (_checkpoints(killed) / f"step={KILL_AFTER}.ckpt").exists()):
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, process.stderr.read()[-3000:]  # killed before the fit ended
    saved = torch.load(_checkpoints(killed) / "last.ckpt", weights_only=True)["global_step"]
    assert KILL_AFTER <= saved < STEPS
    resumed = subprocess.run(_command(case, store, killed, tmp_path) + ["--ckpt_path", "last"], env=env,
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    expected, got = _weights(straight), _weights(killed)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        torch.testing.assert_close(got[key], value, rtol=0, atol=0, msg=key)
