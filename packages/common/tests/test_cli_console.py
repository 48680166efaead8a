"""The one console entry point (vlforge.common.console): every console's --help lists every subcommand on one line
each without importing torch or Lightning; tools registered in one table; one-line errors; logging with -v / -q."""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from vlforge.common.console import LIGHTNING_SUBCOMMANDS, Tool, console

REPO = Path(__file__).resolve().parents[3]
PACKAGES = ("vlm", "captioner", "critic", "rewriter")
TOY_TOOLS = {
    "speak": Tool("log one line per level", "toy_tools:speak"),
    "fail": Tool("raise a user mistake", "toy_tools:fail"),
}
HEAVY = ("torch", "lightning", "pytorch_lightning", "transformers", "open_clip")


def _registered(package: str) -> dict[str, str]:
    """Every subcommand of a console with its one-line summary, from its own table (store: its subparsers)."""
    if package == "store":
        from vlforge.common.store_cli import build_parser

        (sub,) = [a for a in build_parser()._actions if a.dest == "command"]
        return {action.dest: action.help for action in sub._choices_actions}
    tools = importlib.import_module(f"vlforge.{package}.cli").TOOLS
    return {**LIGHTNING_SUBCOMMANDS, **{name: tool.summary for name, tool in tools.items()}}


def _entry_point(package: str) -> str:
    """`module:function` of the package's console script, as its pyproject.toml declares it."""
    folder = "common" if package == "store" else package
    scripts = tomllib.loads((REPO / "packages" / folder / "pyproject.toml").read_text())["project"]["scripts"]
    return scripts[f"vlforge-{package}"]


def _help_in_subprocess(package: str) -> subprocess.CompletedProcess[str]:
    """`vlforge-<package> --help` as its console script runs it, with Python's import log on stderr."""
    module, function = _entry_point(package).split(":")
    script = f"import sys; sys.argv = ['vlforge-{package}', '--help']; from {module} import {function}; {function}()"
    env = {**os.environ, "COLUMNS": "60"}  # a narrow terminal must not wrap a subcommand's line
    return subprocess.run([sys.executable, "-X", "importtime", "-c", script], capture_output=True, text=True,
                          timeout=120, env=env)


@pytest.mark.parametrize("package", [*PACKAGES, "store"])
def test_help_lists_every_subcommand_on_one_line_without_importing_torch(package: str) -> None:
    result = _help_in_subprocess(package)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    registered = _registered(package)
    assert registered and all(summary for summary in registered.values())
    for name, summary in registered.items():
        assert any(re.fullmatch(rf"\s+{re.escape(name)}\s+{re.escape(summary)}", line) for line in lines), name
    imported = {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert "vlforge.common.errors" in imported  # the import log is real and covers vlforge's own modules
    heavy = sorted(m for m in imported if m.split(".")[0] in HEAVY)
    assert not heavy, heavy[:5]


@pytest.mark.parametrize("package", PACKAGES)
def test_each_registered_tool_is_a_function_of_its_command_line(package: str) -> None:
    for name, tool in importlib.import_module(f"vlforge.{package}.cli").TOOLS.items():
        function = tool.load()
        expected = ["argv", "prog"] if tool.pass_prog else ["argv"]
        assert callable(function) and list(inspect.signature(function).parameters) == expected, name


@pytest.mark.parametrize("package", PACKAGES)
def test_the_shared_plot_tool_names_the_console_it_runs_under(package: str, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    tools = importlib.import_module(f"vlforge.{package}.cli").TOOLS
    with pytest.raises(SystemExit) as done:
        console(package, tools, ["plot", "--help"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: vlforge-{package} plot [-h] [--out OUT] run")
    assert console(package, tools, ["plot", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"vlforge-{package} plot: error: ") and "no metrics.csv" in err and len(err.splitlines()) == 1
    assert console(package, tools, ["plot"]) == 2
    missing = capsys.readouterr().err.strip()
    assert missing == f"vlforge-{package} plot: error: the following arguments are required: run"


def test_a_tool_runs_with_logging_at_info_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert console("common", TOY_TOOLS, ["speak", "--code", "3"]) == 3
    err = capsys.readouterr().err
    assert "info line" in err and "warning line" in err and "debug line" not in err


def test_verbose_and_quiet_set_the_level(capsys: pytest.CaptureFixture[str]) -> None:
    assert console("common", TOY_TOOLS, ["-v", "speak"]) == 0
    assert "debug line" in capsys.readouterr().err
    assert console("common", TOY_TOOLS, ["-q", "speak"]) == 0
    err = capsys.readouterr().err
    assert "warning line" in err and "info line" not in err
    assert console("common", TOY_TOOLS, ["-q", "fit", "--trainer.max_stepz", "1"]) == 2
    assert logging.getLogger("lightning.pytorch").level == logging.WARNING
    assert console("common", TOY_TOOLS, ["fit", "--trainer.max_stepz", "1"]) == 2
    assert logging.getLogger("lightning.pytorch").level == logging.INFO


def test_user_mistakes_are_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert console("common", TOY_TOOLS, ["fail", "r1"]) == 2
    assert capsys.readouterr().err == "vlforge-common fail: error: record 'r1': bad second line\n"
    assert console("common", TOY_TOOLS, ["speak", "--code", "x"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("vlforge-common speak: error: argument --code: invalid int")
    assert console("common", TOY_TOOLS, ["nope"]) == 2
    assert capsys.readouterr().err.startswith("vlforge-common: error: unknown command 'nope' (one of fit, ")
    assert console("common", TOY_TOOLS, []) == 2
    assert re.search(r"\n  speak +log one line per level\n", capsys.readouterr().err)


def test_a_console_script_tool_error_is_one_line_in_a_subprocess(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "vlforge.vlm.cli", "export", "--checkpoint",
                             str(tmp_path / "none.ckpt"), "--format", "open_clip", "--out", str(tmp_path / "o")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"vlforge-vlm export: error: checkpoint {tmp_path / 'none.ckpt'}: "
                                          "no such file or folder"]
