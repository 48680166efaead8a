"""`vlforge-captioner`: fit / validate / test / predict any vlforge-captioner LitModule from stacked YAML configs,
plus the tools `generate`, `analyze` and `export` (vlforge.captioner.tools_cli)."""

import sys

from vlforge.common.cli import run_cli


def main() -> None:
    if sys.argv[1:2] and sys.argv[1] in ("generate", "analyze", "export"):
        from vlforge.captioner.tools_cli import main as tools

        sys.exit(tools(sys.argv[1:]))
    sys.exit(run_cli("captioner"))


if __name__ == "__main__":
    main()
