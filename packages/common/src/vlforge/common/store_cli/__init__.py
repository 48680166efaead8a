"""`vlforge-store`: the data tool. Each subcommand lives in its own module and registers itself here."""

from __future__ import annotations

import argparse
import sys

from vlforge.common.console import ToolParser, configure_logging, run_tool

# module name -> subcommands it registers; imported lazily so `--help` stays fast.
_COMMAND_MODULES = ("ingest", "shapes", "inspect", "export", "browse", "html_browser")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = ToolParser(prog="vlforge-store", description="Build, inspect and export vlforge caption stores.",
                        formatter_class=_one_line_per_command)
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", action="count", default=0,
                           help="log debug messages too (every skipped record)")
    verbosity.add_argument("-q", "--quiet", action="count", default=0, help="log warnings and errors only")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(f"vlforge.common.store_cli.{name}").register(sub)
    return parser


def _one_line_per_command(prog: str) -> argparse.HelpFormatter:
    """`--help` lists each subcommand on one line, whatever the terminal's width."""
    return argparse.HelpFormatter(prog, max_help_position=16, width=200)


def main(argv: list[str] | None = None) -> int:
    """The console entry; logging and one-line errors as in every vlforge console (vlforge.common.console)."""
    parser = build_parser()
    return run_tool("vlforge-store", lambda: _run(parser.parse_args(argv)))


def _run(args: argparse.Namespace) -> int | None:
    configure_logging(args.verbose - args.quiet)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
