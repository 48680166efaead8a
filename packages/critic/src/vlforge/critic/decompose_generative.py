"""The generative decomposer (#12 item 1): any model ``vlforge.common.lm`` loads — a causal LM, or an MLLM asked
without an image — prompted with the paper's Fig. 12 prompt (or the one-line ``short`` prompt of the tiny
ShapesWorld recipe), both shipped in ``configs/prompts/decompose.yaml``; its output is parsed into sentences.

Parsing (``parse_sentences``): one sentence per line, numbering ("1.", "2)") and bullets ("-", "*", "•") stripped,
blank lines dropped; a line holding several sentences is split further, and so is a list whose line breaks were
collapsed (``common.lm.generate`` returns texts with whitespace squashed, so "1. A. 2. B." is two sentences).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache

from vlforge.common.errors import VLForgeError
from vlforge.common.text import split_sentences
from vlforge.critic.prompts import shipped_prompts

PROMPTS_FILE = "decompose.yaml"
CAPTION_FIELD = "{caption}"
_MARKER = r"(?:\(?\d{1,3}[.)]|[-*•])\s+"
_LINE_MARKER = re.compile(rf"^\s*{_MARKER}")
_INLINE_MARKER = re.compile(rf"(?<=[.!?])\s+{_MARKER}")


@cache
def decompose_prompts() -> dict[str, str]:
    """The shipped decomposition prompts by name (each holds ``{caption}`` once)."""
    return shipped_prompts(PROMPTS_FILE, (CAPTION_FIELD,))


def decompose_prompt(caption: str, prompt: str = "fig12") -> str:
    """The instruction asking for ``caption``'s atomic sentences with the shipped prompt named ``prompt``."""
    prompts = decompose_prompts()
    if prompt not in prompts:
        raise VLForgeError(f"decomposition prompt {prompt!r} is not one of {', '.join(prompts)}")
    return prompts[prompt].replace(CAPTION_FIELD, caption)


def parse_sentences(text: str, splitter: str = "regex") -> list[str]:
    """The sentences of a generated decomposition (see the module docstring); [] for empty output."""
    sentences = []
    for line in _INLINE_MARKER.sub("\n", text).splitlines():
        sentences += split_sentences(_LINE_MARKER.sub("", line), splitter)
    return sentences


class GenerativeDecomposer:
    """``caption -> list[str]`` like ``RuleBasedDecomposer``, plus :meth:`decompose_batch`. ``model_source``: what
    ``common.lm.load_generative`` loads (``preset:gpt2_tiny``, a hub name, a folder); ``weights``: a vlforge
    checkpoint of that architecture (e.g. ``critic:decompose_tiny.yaml``'s); ``prompt``: a name in
    ``configs/prompts/decompose.yaml`` (the one the model was trained with). Greedy decoding. ``empty_outputs``
    counts captions whose output held no sentence."""

    def __init__(self, model_source: str, weights: str | None = None, prompt: str = "fig12",
                 max_new_tokens: int = 256, batch_size: int = 8, prompt_style: str = "chat",
                 splitter: str = "regex", device: str = "cpu") -> None:
        from vlforge.common.lm.model import GenerativeModel

        decompose_prompt("", prompt)  # an unknown prompt name fails before the model loads
        self.holder = GenerativeModel(source=model_source, weights=weights)
        self.holder.model.to(device)
        self.prompt, self.prompt_style, self.splitter = prompt, prompt_style, splitter
        self.batch_size = batch_size
        self.decoding = {"max_new_tokens": max_new_tokens, "do_sample": False, "num_beams": 1}
        self.empty_outputs = 0

    def decompose_batch(self, captions: Sequence[str]) -> list[list[str]]:
        """Each caption's sentences, generated in batches of ``batch_size``; an empty caption gives [] unasked."""
        from vlforge.common.lm.generate import generate_texts

        asked = [i for i, caption in enumerate(captions) if caption.strip()]
        texts = generate_texts(self.holder, None, [decompose_prompt(captions[i], self.prompt) for i in asked],
                               decoding=self.decoding, batch_size=self.batch_size,
                               prompt_style=self.prompt_style) if asked else []
        out: list[list[str]] = [[] for _ in captions]
        for i, text in zip(asked, texts, strict=True):
            out[i] = parse_sentences(text, self.splitter)
            self.empty_outputs += not out[i]
        return out

    def __call__(self, caption: str) -> list[str]:
        return self.decompose_batch([caption])[0]
