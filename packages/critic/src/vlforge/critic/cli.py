"""`vlforge-critic`: fit / validate / test / predict any vlforge-critic LitModule from stacked YAML configs, and the
tools of TOOLS (register one with a line there, see packages/common/README.md); the console itself is
vlforge.common.console."""

import sys
from collections.abc import Sequence

from vlforge.common.console import Tool, console

TOOLS: dict[str, Tool] = {
    "make-data": Tool("ShapesWorld critic examples (image, sentence -> critique, verdict) as LLaVA JSON",
                      "vlforge.critic.make_data:main"),
    "teacher-data": Tool("critic rows from (image, corrected, original caption) pairs written by a teacher MLLM",
                         "vlforge.critic.teacher_data:main"),
    "decompose-eval": Tool("precision/recall of atomic facts recovered by decomposition (ShapesWorld)",
                           "vlforge.critic.decompose_eval:main"),
    "evaluate": Tool("verdict accuracy of a trained critic on held-out ShapesWorld images, per error type and mode",
                     "vlforge.critic.evaluate:main"),
    "analyze": Tool("a caption source before and after critic-rewrite: verdicts, CHAIR, object coverage, length",
                    "vlforge.critic.analyze:main"),
    "plot": Tool("training curves of a run folder as PNG", "vlforge.common.metrics.training_curves:main",
                 pass_prog=True),
}


def main(argv: Sequence[str] | None = None) -> None:
    sys.exit(console("critic", TOOLS, argv))


if __name__ == "__main__":
    main()
