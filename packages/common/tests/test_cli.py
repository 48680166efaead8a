"""VLForgeCLI through run_cli / the console module: subcommands, stacking, overrides, run dir, one-line errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vlforge.common.cli import resolve_config, run_cli

TOY_BASE = Path(__file__).parent / "toy" / "toy_base.yaml"


def _run(tmp_path: Path, *args: str) -> int:
    return run_cli(
        "common", [args[0], "--config", str(TOY_BASE), "--run_root", str(tmp_path / "runs"), *args[1:]]
    )


def test_fit_then_validate_test_predict_from_the_checkpoint(tmp_path: Path) -> None:
    assert _run(tmp_path, "fit", "--trainer.max_steps", "3") == 0
    run_dir = tmp_path / "runs" / "common" / "version_0"
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert (
        config["trainer"]["max_steps"] == 3 and config["model"]["class_path"] == "toy_lightning.ToyLitModule"
    )
    assert json.loads((run_dir / "metrics_fit.json").read_text())["global_step"] == 3
    last = run_dir / "checkpoints" / "last.ckpt"
    assert last.is_file()
    for subcommand in ("validate", "test", "predict"):
        assert _run(tmp_path, subcommand, "--ckpt_path", str(last)) == 0
    assert (
        "val_loss"
        in json.loads((tmp_path / "runs/common/version_1/metrics_validate.json").read_text())["metrics"]
    )
    assert (
        "test_loss"
        in json.loads((tmp_path / "runs/common/version_2/metrics_test.json").read_text())["metrics"]
    )


def test_configs_stack_in_order_and_dotted_overrides_win(tmp_path: Path) -> None:
    first = tmp_path / "first.yaml"
    first.write_text("trainer:\n  max_steps: 2\nmodel:\n  init_args:\n    lr: 0.5\n    gamma: ${.lr}\n")
    second = tmp_path / "second.yaml"
    second.write_text("model:\n  init_args:\n    lr: 0.25\n")
    assert (
        _run(
            tmp_path,
            "fit",
            "--config",
            str(first),
            "--config",
            str(second),
            "--trainer.max_steps",
            "1",
            "--run_name",
            "stack",
        )
        == 0
    )
    config = yaml.safe_load((tmp_path / "runs/stack/version_0/config.yaml").read_text())
    assert config["model"]["init_args"]["lr"] == 0.25  # the later file wins
    assert config["model"]["init_args"]["gamma"] == 0.5  # interpolated within its own file
    assert config["trainer"]["max_steps"] == 1  # the command line wins
    assert config["trainer"]["accelerator"] == "cpu"  # the cpu preset is the default


def test_print_config_prints_the_merged_config(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _run(tmp_path, "fit", "--model.init_args.lr", "0.125", "--print_config")
    assert exit_info.value.code == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["init_args"]["lr"] == 0.125 and printed["data"]["init_args"]["batch_size"] == 8


def test_tensorboard_flag_adds_tensorboard_logs(tmp_path: Path) -> None:
    assert _run(tmp_path, "fit", "--trainer.max_steps", "1", "--tensorboard", "true") == 0
    assert list((tmp_path / "runs/common/version_0").glob("events.out.tfevents.*"))


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("model:\n  init_args:\n    lrr: 0.1\n", "model.init_args.lrr: unknown key (in {file})"),
        ("model:\n  init_args:\n    lr: abc\n", "model.init_args.lr: expected float, got 'abc' (in {file})"),
        ("trainer:\n  max_stepz: 3\n", "trainer.max_stepz: unknown key (in {file})"),
        (
            "model:\n  class_path: toy_lightning.ToyLitModule\n  init_args:\n    net: null\n",
            "model.init_args.net: missing value (in {file})",
        ),
    ],
    ids=["unknown_key", "wrong_type", "unknown_trainer_key", "missing_value"],
)
def test_config_mistakes_are_one_line_naming_key_and_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], yaml_text: str, expected: str
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml_text)
    assert _run(tmp_path, "fit", "--config", str(bad)) == 2
    err = capsys.readouterr().err.strip()
    assert err == "vlforge-common: error: " + expected.format(file=bad)


def test_command_line_mistake_is_located_on_the_command_line(tmp_path, capsys) -> None:
    assert _run(tmp_path, "fit", "--model.init_args.net.init_args.hidden", "many") == 2
    assert capsys.readouterr().err.strip() == (
        "vlforge-common: error: model.init_args.net.init_args.hidden: "
        "expected int, got 'many' (on the command line)"
    )


def test_package_config_shorthand(tmp_path: Path) -> None:
    assert resolve_config("common:trainer/ddp_cpu_2.yaml").endswith(
        "vlforge/common/configs/trainer/ddp_cpu_2.yaml"
    )
    assert resolve_config(str(TOY_BASE)) == str(TOY_BASE)
    assert _run(tmp_path, "fit", "--config", "common:trainer/missing.yaml") == 2
    assert _run(tmp_path, "fit", "--config", "common:../../errors.yaml") == 2


def test_package_console_script_reports_errors_without_traceback(
    tmp_path: Path, toy_env: dict[str, str]
) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "vlforge.vlm.cli",
            "fit",
            "--config",
            str(TOY_BASE),
            "--trainer.max_stepz",
            "1",
        ],
        env=toy_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "vlforge-vlm: error: trainer.max_stepz: unknown key (on the command line)"
    )
    assert "Traceback" not in result.stderr


def test_run_without_logger_stays_in_the_run_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert (
        _run(tmp_path, "fit", "--trainer.max_steps", "1", "--trainer.logger", "false", "--run_name", "quiet")
        == 0
    )
    assert not (tmp_path / "config.yaml").exists()
    assert (tmp_path / "runs/quiet/config.yaml").is_file()
    assert (tmp_path / "runs/quiet/checkpoints/last.ckpt").is_file()
