"""The one console entry point of every vlforge package: `vlforge-<package> [-v|-q] COMMAND ...`.

COMMAND is a LightningCLI subcommand (fit / validate / test / predict, handled by vlforge.common.cli) or one of the
package's tools, declared in one table in the package's `cli.py`; registering a tool is one line:

    TOOLS = {"score": Tool("write CLIP scores into a store's captions", "vlforge.vlm.score:main")}

    def main() -> None:
        sys.exit(console("vlm", TOOLS))

A tool's entry is `"module:function"`, imported only when that tool runs (so `--help` imports neither torch nor
Lightning), with the signature of `ToolMain`: the command line after the tool's name in, the exit code out. A tool
several consoles share (`plot`) is declared with `pass_prog=True`: its function also takes `prog=`, the console's
`vlforge-<package> <tool>`, so that its usage and errors name the console it runs under. The
console, not the tool, turns a user mistake into one line on stderr and exit code 2 (VLForgeError, jsonargparse
errors, argparse errors through `ToolParser`) and configures logging once: INFO by default, `-v` DEBUG, `-q`
WARNING (vlforge's loggers and Lightning's).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from vlforge.common.config_errors import describe_config_error
from vlforge.common.errors import VLForgeError
from vlforge.common.strict_argparse import StrictArgumentParser

ToolMain = Callable[[list[str]], "int | None"]
"""A tool's function: its command line (after the tool's name) in, the exit code (None means 0) out."""

LIGHTNING_SUBCOMMANDS = {
    "fit": "train a LitModule from stacked YAML configs (--config a.yaml --config b.yaml)",
    "validate": "run one validation epoch of a checkpoint",
    "test": "run one test epoch of a checkpoint",
    "predict": "run prediction with a checkpoint",
}
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_LOGGERS = ("vlforge", "lightning.pytorch", "lightning.fabric")
_HANDLER_NAME = "vlforge-console"


@dataclass(frozen=True)
class Tool:
    """A console subcommand beside fit / validate / test / predict: a one-line `summary` for `--help` and the
    `entry` "module:function" of its `ToolMain`, imported when the tool runs; `pass_prog`: the function takes
    `prog=` too (a tool several consoles share)."""

    summary: str
    entry: str
    pass_prog: bool = False

    def load(self) -> ToolMain:
        module, _, function = self.entry.partition(":")
        return getattr(importlib.import_module(module), function)


class ToolParser(StrictArgumentParser):
    """argparse for tools: a usage mistake raises VLForgeError, which the console prints as one line (exit 2); no
    option is matched by abbreviation."""

    def error(self, message: str) -> NoReturn:
        raise VLForgeError(message)


def configure_logging(verbosity: int) -> None:
    """Logging for one console run: vlforge's and Lightning's loggers at INFO (verbosity 0), DEBUG (> 0) or
    WARNING (< 0), to stderr with a time stamp; other libraries' loggers at WARNING."""
    level = logging.INFO if verbosity == 0 else logging.DEBUG if verbosity > 0 else logging.WARNING
    root = logging.getLogger()
    remove_logging()
    handler = logging.StreamHandler()
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(logging.Formatter(LOG_FORMAT, datefmt="%H:%M:%S"))
    root.addHandler(handler)
    for name in _LOGGERS:
        logging.getLogger(name).setLevel(level)


def remove_logging() -> None:
    """Remove the console's own handler (other handlers stay): a run's handler writes to the stderr of that run,
    which a later caller in the same process (tests, notebooks) may have closed or replaced."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(handler)


def help_text(prog: str, tools: Mapping[str, Tool], lightning: bool = True) -> str:
    """The console's `--help`: every subcommand with its one-line summary (built without importing a tool)."""
    commands = {**(LIGHTNING_SUBCOMMANDS if lightning else {}), **{n: t.summary for n, t in tools.items()}}
    width = max(map(len, commands), default=0)
    lines = [
        f"usage: {prog} [-h] [-v | -q] COMMAND ...",
        "",
        "commands (`" + prog + " COMMAND --help` for each one's options):",
        *(f"  {name.ljust(width)}  {summary}" for name, summary in commands.items()),
        "",
        "options:",
        "  -h, --help     show this help and exit",
        "  -v, --verbose  log debug messages too",
        "  -q, --quiet    log warnings and errors only",
    ]
    return "\n".join(lines)


def console(package: str, tools: Mapping[str, Tool] | None = None, argv: Sequence[str] | None = None,
            **cli_kwargs: Any) -> int:
    """Run `vlforge-<package>` on `argv` (default: sys.argv[1:]); returns the exit code. `cli_kwargs` go to the
    LightningCLI subcommands (vlforge.common.cli.VLForgeCLI, e.g. `links=`)."""
    tools = dict(tools or {})
    prog = f"vlforge-{package}"
    args = list(sys.argv[1:] if argv is None else argv)
    verbosity = 0
    while args and args[0] in ("-v", "--verbose", "-q", "--quiet"):
        verbosity += 1 if args.pop(0) in ("-v", "--verbose") else -1
    if not args or args[0] in ("-h", "--help"):
        print(help_text(prog, tools), file=sys.stdout if args else sys.stderr)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command not in tools and command not in LIGHTNING_SUBCOMMANDS and not command.startswith("-"):
        print(f"{prog}: error: unknown command {command!r} (one of {', '.join([*LIGHTNING_SUBCOMMANDS, *tools])})",
              file=sys.stderr)
        return 2
    try:
        if command in tools:
            configure_logging(verbosity)
            tool, tool_prog = tools[command], f"{prog} {command}"
            if tool.pass_prog:
                return run_tool(tool_prog, lambda: tool.load()(rest, prog=tool_prog))
            return run_tool(tool_prog, lambda: tool.load()(rest))
        from vlforge.common.cli import run_cli

        configure_logging(verbosity)  # after Lightning's import, which sets its own logger's level
        return run_cli(package, args, **cli_kwargs)
    finally:
        remove_logging()  # the handler belongs to this run


def run_tool(prog: str, call: Callable[[], int | None]) -> int:
    """Run one tool: its exit code, or 2 with `prog: error: <one line>` on a user mistake, 130 on Ctrl-C."""
    try:
        return int(call() or 0)
    except VLForgeError as err:
        message = " ".join(str(err).split())
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - only config-parser errors are user mistakes; anything else re-raises
        if not _is_argument_error(err):
            raise
        message = describe_config_error(str(err))
    print(f"{prog}: error: {message}", file=sys.stderr)
    return 2


def _is_argument_error(err: Exception) -> bool:
    """jsonargparse's / argparse's ArgumentError (jsonargparse is imported only if a tool already did)."""
    jsonargparse = sys.modules.get("jsonargparse")
    kinds = (argparse.ArgumentError,) + ((jsonargparse.ArgumentError,) if jsonargparse is not None else ())
    return isinstance(err, kinds)
