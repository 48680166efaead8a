"""Prompt styles, by name: how an (image?, instruction) pair becomes the prompt text and a response its target text.

- ``chat``: the processor's (or tokenizer's) chat template — a user turn with the image (when there is one) and the
  instruction, the generation prompt on. The response is what the template writes after that prompt for the
  assistant turn (so its end-of-turn tokens are learned too); where the template cannot be split that way the
  response is followed by the tokenizer's EOS and the split counts as a fallback (see :class:`Rendered`).
- ``plain``: no template (LLaVA's pre-alignment stage, ``preprocess_plain``): the image placeholder, then the
  instruction (LLaVA uses none: pass ""), then the response and EOS.

A multi-turn conversation (LLaVA's instruction data) renders with :func:`render_turns` as alternating prompt and
response segments, each response the text the template writes for that assistant turn (the image in the first
user turn).

``processor`` is a transformers processor (image-text models) or a tokenizer (text-only causal LMs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vlforge.common.errors import VLForgeError

PROMPT_STYLES = ("chat", "plain")


def tokenizer_of(processor: Any) -> Any:
    """The tokenizer of a processor, or the tokenizer itself."""
    return getattr(processor, "tokenizer", None) or processor


def takes_images(processor: Any) -> bool:
    """True for a multimodal processor (it has an image processor)."""
    return getattr(processor, "image_processor", None) is not None


def user_turn(instruction: str, image: bool = True) -> list[dict[str, Any]]:
    content = [{"type": "image"}] if image else []
    return [{"role": "user", "content": [*content, {"type": "text", "text": instruction}]}]


@dataclass(frozen=True)
class Rendered:
    """A prompt and its response text; ``split`` is False when the template could not be split at the response."""

    prompt: str
    response: str
    split: bool = True


def _check_style(style: str) -> None:
    if style not in PROMPT_STYLES:
        raise VLForgeError(f"prompt style {style!r} is not one of {', '.join(PROMPT_STYLES)}")


def image_placeholder(processor: Any) -> str:
    """The text the chat template writes for one image (e.g. ``<image>``; Qwen2-VL's
    ``<|vision_start|><|image_pad|><|vision_end|>``; "" for a model that takes images by cross-attention)."""
    if getattr(processor, "chat_template", None):
        with_image = processor.apply_chat_template(user_turn("", True), tokenize=False)
        without = processor.apply_chat_template(user_turn("", False), tokenize=False)
        start = 0
        while start < min(len(with_image), len(without)) and with_image[start] == without[start]:
            start += 1
        end = 0
        while end < min(len(with_image), len(without)) - start and with_image[-1 - end] == without[-1 - end]:
            end += 1
        return with_image[start:len(with_image) - end].strip()
    return str(getattr(processor, "image_token", "") or "")


def prompt_text(processor: Any, instruction: str, image: bool = True, style: str = "chat") -> str:
    """The text prompt (image placeholder included when ``image``) that asks the model for a response."""
    _check_style(style)
    if style == "plain":
        return " ".join(p for p in (image_placeholder(processor) if image else "", instruction) if p)
    if not getattr(processor, "chat_template", None):
        raise VLForgeError(f"{type(processor).__name__} has no chat template; set one or use prompt style 'plain'")
    return processor.apply_chat_template(user_turn(instruction, image), add_generation_prompt=True, tokenize=False)


def render(processor: Any, instruction: str, response: str, image: bool = True, style: str = "chat") -> Rendered:
    """The prompt and the response's target text (end-of-turn or EOS included)."""
    prompt = prompt_text(processor, instruction, image, style)
    eos = tokenizer_of(processor).eos_token or ""
    if style == "plain":
        return Rendered(prompt, (" " if prompt else "") + response + eos)
    conversation = user_turn(instruction, image) + [
        {"role": "assistant", "content": [{"type": "text", "text": response}]}]
    full = processor.apply_chat_template(conversation, tokenize=False)
    if full.startswith(prompt) and response in full[len(prompt):]:
        return Rendered(prompt, full[len(prompt):])
    return Rendered(prompt, response + eos, split=False)


@dataclass(frozen=True)
class Segment:
    """A piece of a rendered conversation; ``response`` marks text the model is trained on."""

    text: str
    response: bool


def _chat_turns(turns: list[tuple[str, str]], image: bool, upto: int) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for index, (instruction, response) in enumerate(turns[:upto]):
        messages += user_turn(instruction, image and index == 0)
        messages.append({"role": "assistant", "content": [{"type": "text", "text": response}]})
    return messages


def render_turns(processor: Any, turns: list[tuple[str, str]], image: bool = True,
                 style: str = "chat") -> tuple[list[Segment], bool]:
    """``(segments, split)`` of a multi-turn conversation ``[(instruction, response), ...]``: prompt and response
    segments alternate, so that concatenated they are the template's rendering of the whole conversation. ``split``
    is False when the template's rendering of a shorter conversation is not a prefix of a longer one's (the
    responses are then each followed by EOS after their turn's own prompt, as :func:`render` falls back)."""
    _check_style(style)
    if not turns:
        raise VLForgeError("a conversation needs at least one (instruction, response) turn")
    if style == "plain" or len(turns) == 1:
        segments = []
        for index, (instruction, response) in enumerate(turns):
            rendered = render(processor, instruction, response, image=image and index == 0, style=style)
            prompt = rendered.prompt if index == 0 or style == "chat" else " " + rendered.prompt
            segments += [Segment(prompt, False), Segment(rendered.response, True)]
            if not rendered.split:
                return segments + _fallback(processor, turns[index + 1:], style), False
        return segments, True
    segments, done = [], ""
    for index, (instruction, response) in enumerate(turns):
        prompt = processor.apply_chat_template(_chat_turns(turns, image, index) + user_turn(instruction,
                                               image and index == 0), add_generation_prompt=True, tokenize=False)
        full = processor.apply_chat_template(_chat_turns(turns, image, index + 1), tokenize=False)
        if not (prompt.startswith(done) and full.startswith(prompt) and response in full[len(prompt):]):
            return segments + _fallback(processor, turns[index:], style, image and index == 0), False
        segments += [Segment(prompt[len(done):], False), Segment(full[len(prompt):], True)]
        done = full
    return segments, True


def _fallback(processor: Any, turns: list[tuple[str, str]], style: str, image: bool = False) -> list[Segment]:
    eos = tokenizer_of(processor).eos_token or ""
    out = []
    for index, (instruction, response) in enumerate(turns):
        out += [Segment(prompt_text(processor, instruction, image and index == 0, style), False),
                Segment(response + eos, True)]
    return out
