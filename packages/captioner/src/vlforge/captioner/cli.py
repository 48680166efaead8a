"""`vlforge-captioner`: fit / validate / test / predict any vlforge-captioner LitModule from stacked YAML configs,
and the tools below (vlforge.captioner.tools_cli); the console itself is vlforge.common.console."""

import sys

from vlforge.common.console import Tool, console

TOOLS = {
    "generate": Tool("run a generation config's captioners over a store split (resumable)",
                     "vlforge.captioner.tools_cli:generate_main"),
    "analyze": Tool("caption statistics per source (lengths, words, CHAIR, CLIP score): JSON + PNG",
                    "vlforge.captioner.tools_cli:analyze_main"),
    "export": Tool("a trained captioner checkpoint as a transformers folder (--format hf)",
                   "vlforge.captioner.tools_cli:export_main"),
    "score": Tool("write each caption's CHAIR_i against its image's scene graph into the store",
                  "vlforge.captioner.tools_cli:score_main"),
    "evaluate": Tool("grounding of captioner checkpoints on a store split (CHAIR, colour accuracy): JSON",
                     "vlforge.captioner.tools_cli:evaluate_main"),
    "pretrain-tower": Tool("pre-train a LLaVA vision tower per patch on ShapesWorld scene graphs; writes a preset",
                           "vlforge.captioner.tools_cli:pretrain_tower_main"),
    "plot": Tool("training curves of a run folder as PNG", "vlforge.common.metrics.training_curves:main",
                 pass_prog=True),
}


def main() -> None:
    sys.exit(console("captioner", TOOLS))


if __name__ == "__main__":
    main()
