"""The SFT / preference collator and chat prompts: moved to :mod:`vlforge.common.lm.collate` and
:mod:`vlforge.common.lm.prompts` (the captioner's names kept)."""

from __future__ import annotations

from typing import Any

from vlforge.common.lm.collate import SFTCollator
from vlforge.common.lm.prompts import prompt_text, render, user_turn

CaptionCollator = SFTCollator


def chat_prompt(processor: Any, instruction: str) -> str:
    """The chat-template prompt (image placeholder included) that asks ``processor``'s model for a response."""
    return prompt_text(processor, instruction, image=True, style="chat")


def response_text(processor: Any, instruction: str, response: str) -> str:
    """The text the chat template places after the generation prompt for ``response`` (end-of-turn included)."""
    return render(processor, instruction, response, image=True, style="chat").response


__all__ = ["CaptionCollator", "chat_prompt", "response_text", "user_turn"]
