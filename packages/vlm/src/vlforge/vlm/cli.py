"""`vlforge-vlm`: fit / validate / test / predict any vlforge-vlm LitModule from stacked YAML configs, and the tools
below (each `vlforge-vlm TOOL --help`); the console itself is vlforge.common.console."""

import sys

from vlforge.common.console import Tool, console

TOOLS = {
    "evaluate": Tool("evaluate one checkpoint on several stores and image folders into one table",
                     "vlforge.vlm.evaluate:main"),
    "export": Tool("write a CLIP (open_clip, hf-vision, hf-clip) or MLLM (hf-llava) checkpoint in another format",
                   "vlforge.vlm.export:main"),
    "compare": Tool("figures and a table of several evaluate runs side by side", "vlforge.vlm.compare:main"),
    "score": Tool("write the CLIP score of every caption into a store (idempotent)", "vlforge.vlm.score:main"),
    "evaluate-mllm": Tool("an MLLM on ShapesWorld VQA, POPE and CHAIR (and a LLaVA JSON file) into one JSON",
                          "vlforge.vlm.mllm.evaluate_cli:main"),
    "shapes-llava-json": Tool("a ShapesWorld split's QA pairs as LLaVA JSON instruction data",
                              "vlforge.vlm.mllm.shapes_instruct:main"),
    "plot": Tool("training curves of a run folder as PNG", "vlforge.common.metrics.training_curves:main",
                 pass_prog=True),
}


def main() -> None:
    sys.exit(console("vlm", TOOLS))


if __name__ == "__main__":
    main()
