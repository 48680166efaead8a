"""Run folders and checkpoints (vlforge.common.runs) and `fit --ckpt_path last` through the real console: numeric
version order, an empty newest version passed over, no checkpoint at all refused in one line, the run config found
by the run folder layout only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from vlforge.common.cli import run_cli
from vlforge.common.errors import VLForgeError
from vlforge.common.runs import find_run_config, last_checkpoint, latest_version, resume_version, versions

TOY_BASE = Path(__file__).parent / "toy" / "toy_base.yaml"


def _version(run_dir: Path, n: int, checkpoint: bool) -> Path:
    folder = run_dir / f"version_{n}"
    (folder / "checkpoints").mkdir(parents=True)
    if checkpoint:
        (folder / "checkpoints" / "last.ckpt").write_bytes(b"x")
    return folder


def test_versions_are_ordered_by_number_not_by_name(tmp_path: Path) -> None:
    for n in (2, 10, 9):
        _version(tmp_path, n, checkpoint=True)
    (tmp_path / "version_x").mkdir()
    (tmp_path / "version_11").write_text("a file, not a run")
    assert versions(tmp_path) == [2, 9, 10] and latest_version(tmp_path) == 10
    assert last_checkpoint(tmp_path) == tmp_path / "version_10" / "checkpoints" / "last.ckpt"
    assert latest_version(tmp_path / "missing") is None


def test_newer_versions_without_a_checkpoint_are_passed_over(tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    _version(tmp_path, 0, checkpoint=True)
    _version(tmp_path, 1, checkpoint=False)
    (tmp_path / "version_2").mkdir()
    assert resume_version(tmp_path) == 0
    assert "version_1, version_2 without a checkpoint" in caplog.text


def test_no_checkpoint_in_any_version_is_an_error(tmp_path: Path) -> None:
    _version(tmp_path, 0, checkpoint=False)
    with pytest.raises(VLForgeError, match=r"no checkpoints/last.ckpt under .* \(versions 0\)"):
        last_checkpoint(tmp_path)
    with pytest.raises(VLForgeError, match="no version folder"):
        resume_version(tmp_path / "empty")


def test_run_config_is_found_in_the_run_folder_only(tmp_path: Path) -> None:
    run = _version(tmp_path / "runs" / "clip", 0, checkpoint=True)
    (tmp_path / "config.yaml").write_text("model: {class_path: os.system}\n")  # unrelated, higher up
    with pytest.raises(VLForgeError, match="no config.yaml of its run"):
        find_run_config(run / "checkpoints" / "last.ckpt")
    (run / "config.yaml").write_text("model: {}\n")
    assert find_run_config(run / "checkpoints" / "last.ckpt") == run.absolute() / "config.yaml"
    loose = tmp_path / "runs" / "loose.ckpt"
    loose.write_bytes(b"x")
    with pytest.raises(VLForgeError, match="pass the run config"):
        find_run_config(loose)


def _fit(root: Path, steps: int, *extra: str) -> int:
    return run_cli("common", ["fit", "--config", str(TOY_BASE), "--run_root", str(root), "--trainer.max_steps",
                              str(steps), "--trainer.enable_progress_bar", "false", *extra])


def test_fit_ckpt_path_last_resumes_past_a_failed_start(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _fit(tmp_path, 2) == 0
    (tmp_path / "common" / "version_1").mkdir()  # a later attempt that failed before its first checkpoint
    assert _fit(tmp_path, 4, "--ckpt_path", "last") == 0
    first = tmp_path / "common" / "version_0"
    assert torch.load(first / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4
    assert json.loads((first / "metrics_fit.json").read_text())["global_step"] == 4
    assert (first / "config.resume1.yaml").is_file() and not any((tmp_path / "common" / "version_1").iterdir())
    assert versions(tmp_path / "common") == [0, 1]


def test_fit_ckpt_path_last_without_any_checkpoint_fails_in_one_line(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "common" / "version_0").mkdir(parents=True)
    assert _fit(tmp_path, 2, "--ckpt_path", "last") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("vlforge-common: error: --ckpt_path last: no checkpoints/last.ckpt under ")
    assert not (tmp_path / "common" / "version_1").exists()  # nothing started
    assert _fit(tmp_path, 1, "--ckpt_path", "last", "--trainer.logger", "false", "--run_name", "quiet") == 2
    assert "quiet/checkpoints/last.ckpt; drop --ckpt_path" in capsys.readouterr().err
