"""`vlforge-store`: the data tool. Each subcommand lives in its own module and registers itself here."""

from __future__ import annotations

import argparse
import logging
import sys

from vlforge.common.errors import VLForgeError
from vlforge.common.strict_argparse import StrictArgumentParser

# module name -> subcommands it registers; imported lazily so `--help` stays fast.
_COMMAND_MODULES = ("ingest", "shapes", "inspect", "export", "browse", "html_browser")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = StrictArgumentParser(prog="vlforge-store",
                                     description="Build, inspect and export vlforge caption stores.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every skipped record")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in _COMMAND_MODULES:
        importlib.import_module(f"vlforge.common.store_cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except VLForgeError as err:
        print(f"vlforge-store: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vlforge-store: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
