"""`vlforge-rewriter`: fit / validate / test / predict any vlforge-rewriter LitModule from stacked YAML configs, and the
tools of TOOLS (none yet; register one with a line there, see packages/common/README.md); the console itself is
vlforge.common.console."""

import sys

from vlforge.common.console import Tool, console

TOOLS: dict[str, Tool] = {}


def main() -> None:
    sys.exit(console("rewriter", TOOLS))


if __name__ == "__main__":
    main()
