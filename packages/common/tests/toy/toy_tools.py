"""Tools the console tests register (vlforge.common.console.Tool entries): they log, fail or parse like real tools."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from vlforge.common.console import ToolParser
from vlforge.common.errors import VLForgeError

log = logging.getLogger("vlforge.toy_tools")


def speak(argv: Sequence[str]) -> int:
    """Logs one line at each level, then returns the number given by --code."""
    parser = ToolParser(prog="toy speak")
    parser.add_argument("--code", type=int, default=0)
    args = parser.parse_args(argv)
    log.debug("debug line")
    log.info("info line")
    log.warning("warning line")
    return args.code


def fail(argv: Sequence[str]) -> int:
    raise VLForgeError(f"record {argv[0]!r}: bad\nsecond line")
