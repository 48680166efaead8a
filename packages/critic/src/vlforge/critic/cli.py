"""`vlforge-critic`: fit / validate / test / predict any vlforge-critic LitModule from stacked YAML configs."""

import sys

from vlforge.common.cli import run_cli


def main() -> None:
    sys.exit(run_cli("critic"))


if __name__ == "__main__":
    main()
