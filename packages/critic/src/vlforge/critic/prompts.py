"""The critic's instruction: the ultra-detailed caption paper's Fig. 14 prompt ("Prompt for Fine-grained Critic
Data Generation"), without its "Additional Tips" line (no coarse-grained error rationale on ShapesWorld), ending
with the sentence to check."""

from __future__ import annotations

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


def critic_prompt(sentence: str) -> str:
    return f"{CRITIC_INSTRUCTION}\n{SENTENCE_MARKER}{sentence}"


def sentence_of(prompt: str) -> str | None:
    """The sentence a critic prompt asks about (its last "Sentence to be checked:" line), or None."""
    for line in reversed(prompt.splitlines()):
        if line.startswith(SENTENCE_MARKER):
            return line[len(SENTENCE_MARKER):]
    return None
