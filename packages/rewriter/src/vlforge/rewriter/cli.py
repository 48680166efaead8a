"""`vlforge-rewriter`: fit / validate / test / predict any vlforge-rewriter LitModule from stacked YAML configs, and the
tools of TOOLS (register one with a line there, see packages/common/README.md); the console itself is
vlforge.common.console."""

import sys

from vlforge.common.console import Tool, console

TOOLS: dict[str, Tool] = {
    "make-data": Tool("query pairs (D_SFT, D_PRO) from retriever ranks and a rewriting agent",
                      "vlforge.rewriter.make_data:main"),
    "plot": Tool("training curves of a run folder as PNG", "vlforge.common.metrics.training_curves:main",
                 pass_prog=True),
}


def main() -> None:
    sys.exit(console("rewriter", TOOLS))


if __name__ == "__main__":
    main()
