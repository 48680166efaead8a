"""The critic's instructions.

- ``critic_prompt``: the ultra-detailed caption paper's Fig. 14 prompt ("Prompt for Fine-grained Critic Data
  Generation"), without its "Additional Tips" line (no coarse-grained error rationale on ShapesWorld), ending with
  the sentence to check; answered by the full critique.
- ``instruction="short"``: one line for tiny models whose context cannot hold Fig. 14's 500-token prompt
  (ShapesWorld recipe); a critic is scored with the instruction it was trained with.
- ``shipped_prompts``: a prompt YAML of ``configs/prompts/`` (decomposition, rewrite, teacher prompts), checked.
- ``verdict_prompt``: the same task asked for the verdict line only, answered by ``Verdict: consistent|inconsistent``
  (RLAIF-V's direct question): the fast scoring mode reads the verdict word's probability right after the answer's
  ``Verdict:`` with one forward pass (``vlforge.critic.scoring``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib import resources

import yaml

from vlforge.common.errors import VLForgeError

SENTENCE_MARKER = "Sentence to be checked: "

CRITIC_INSTRUCTION = """You are an excellent visual language assistant. You will receive an image and a sentence. \
Please carefully check whether the sentence aligns with the image content, following the steps outlined below:
Task Steps:
1. Analyze the sentence content: List all the key points that need verification, such as: object quantity, color, \
positional relationships, status, interaction actions, textual information, etc. List all the visual details that \
need to be checked.
2. Check each point: Verify each key point description and compare it with the image content one by one. If \
discrepancies are found, explain in detail where the conflict lies, and clearly describe the actual content in the \
image.
3. Summarize the reasoning: Summarize the results of the check, indicating which parts of the sentence match or do \
not match the image content. Provide clear reasons for any inconsistencies, and specify the true visual content in \
the image.
End with one line: "Verdict: consistent" or "Verdict: inconsistent"."""


SHORT_INSTRUCTION = "Check the sentence against the image, point by point, and end with the verdict line."
INSTRUCTIONS = {"fig14": CRITIC_INSTRUCTION, "short": SHORT_INSTRUCTION}
VERDICT_ONLY = "Answer with the verdict line only."


def _instruction(name: str) -> str:
    if name not in INSTRUCTIONS:
        raise VLForgeError(f"critic instruction {name!r} is not one of {', '.join(INSTRUCTIONS)}")
    return INSTRUCTIONS[name]


def critic_prompt(sentence: str, instruction: str = "fig14") -> str:
    """The prompt answered by a full critique."""
    return f"{_instruction(instruction)}\n{SENTENCE_MARKER}{sentence}"


def verdict_prompt(sentence: str, instruction: str = "fig14") -> str:
    """The prompt answered by the verdict line only."""
    return f"{_instruction(instruction)}\n{VERDICT_ONLY}\n{SENTENCE_MARKER}{sentence}"


def sentence_of(prompt: str) -> str | None:
    """The sentence a critic prompt asks about (its last "Sentence to be checked:" line), or None."""
    for line in reversed(prompt.splitlines()):
        if line.startswith(SENTENCE_MARKER):
            return line[len(SENTENCE_MARKER):]
    return None


def shipped_prompts(file: str, fields: Sequence[str] | Mapping[str, Sequence[str]]) -> dict[str, str]:
    """The prompts of ``configs/prompts/<file>`` by name; each must be a text holding each of its ``fields`` once
    (``fields``: the same for every prompt, or the prompts that must exist with their own fields)."""
    path = resources.files("vlforge.critic") / "configs" / "prompts" / file
    prompts = yaml.safe_load(path.read_text())
    wanted = fields if isinstance(fields, Mapping) else dict.fromkeys(prompts, fields)
    for name, needed in wanted.items():
        if not isinstance(prompts.get(name), str) or any(prompts[name].count(f) != 1 for f in needed):
            raise VLForgeError(f"{path}: prompt {name!r} must be a text holding {' and '.join(needed)} once each")
    return prompts
