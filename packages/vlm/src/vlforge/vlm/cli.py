"""`vlforge-vlm`: fit / validate / test / predict any vlforge-vlm LitModule from stacked YAML configs;
`vlforge-vlm evaluate ...` evaluates one checkpoint on several stores (vlforge.vlm.evaluate);
`vlforge-vlm export ...` writes a checkpoint in open_clip's or Hugging Face's format (vlforge.vlm.export)."""

import sys

from vlforge.common.cli import run_cli


def main() -> None:
    if sys.argv[1:2] == ["evaluate"]:
        from vlforge.vlm.evaluate import main as evaluate_main

        sys.exit(evaluate_main(sys.argv[2:]))
    if sys.argv[1:2] == ["export"]:
        from vlforge.vlm.export import main as export_main

        sys.exit(export_main(sys.argv[2:]))
    sys.exit(run_cli("vlm"))


if __name__ == "__main__":
    main()
