"""A real 2-process DDP fit on CPU (gloo, ddp_cpu_2 preset) equals one process with the same global batch; its
checkpoint exports and reloads like a plain one."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vlforge.common.checkpoint import export_checkpoint, load_exported
from vlforge.common.cli import run_cli

TOY_BASE = Path(__file__).parent / "toy" / "toy_base.yaml"
STEPS = ["--trainer.max_steps", "6", "--seed_everything", "3"]


def _last(root: Path) -> Path:
    (path,) = root.glob("common/version_*/checkpoints/last.ckpt")
    return path


@pytest.mark.ddp
def test_two_process_ddp_matches_single_process(tmp_path: Path, toy_env: dict[str, str]) -> None:
    # Lightning re-launches this very command line for rank 1, so the run goes through the console module.
    ddp = subprocess.run(
        [
            sys.executable,
            "-m",
            "vlforge.common.cli",
            "fit",
            "--config",
            str(TOY_BASE),
            "--config",
            "common:trainer/ddp_cpu_2.yaml",
            "--data.init_args.batch_size",
            "4",
            "--run_root",
            str(tmp_path / "ddp"),
            *STEPS,
        ],
        env=toy_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert "world_size: 2" in ddp.stdout + ddp.stderr or "MEMBER: 2/2" in ddp.stdout + ddp.stderr
    assert (
        run_cli(
            "common",
            [
                "fit",
                "--config",
                str(TOY_BASE),
                "--data.init_args.batch_size",
                "8",
                "--run_root",
                str(tmp_path / "single"),
                *STEPS,
            ],
        )
        == 0
    )

    ddp_ckpt, single_ckpt = _last(tmp_path / "ddp"), _last(tmp_path / "single")
    ddp_state = torch.load(ddp_ckpt, weights_only=True)
    single_state = torch.load(single_ckpt, weights_only=True)
    assert ddp_state["global_step"] == single_state["global_step"] == 6
    for key, value in single_state["state_dict"].items():
        torch.testing.assert_close(ddp_state["state_dict"][key], value, rtol=0, atol=1e-5, msg=key)

    net = load_exported(export_checkpoint(ddp_ckpt, tmp_path / "export", submodule="net"))
    for key, value in net.state_dict().items():
        torch.testing.assert_close(value, ddp_state["state_dict"]["net." + key], rtol=0, atol=0)
