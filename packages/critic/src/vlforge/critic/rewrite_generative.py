"""The generative rewrite of critic-rewrite (#12 item 5; paper §4.2, Fig. 15): any model ``vlforge.common.lm``
loads — a causal LM, or an MLLM asked without an image — given the original caption and its atomic sentences with
their critiques, writes the corrected caption. Prompts ship in ``configs/prompts/rewrite.yaml`` (Fig. 15 word for
word, and the one-line ``short`` prompt of the tiny ShapesWorld recipe).

A sentence's critique in the prompt is its critique's ``Summary:`` line (what is wrong and what the image shows), or
the whole critique without its verdict line when it has no summary, or only the verdict when the critic gave no
critique (the fast probability mode). ``critiqued="inconsistent"`` lists only the sentences judged inconsistent (a
tiny model's context cannot hold them all), ``"all"`` every sentence with its verdict. A caption with no sentence
judged inconsistent is kept as it is, without asking the model.

``scope="sentence"`` asks for each inconsistent sentence apart (the prompt's ``{caption}`` is the sentence, its
``{critiques}`` the sentence's critique) and puts the answer in the sentence's place (an empty answer drops the
sentence): a short context for models that cannot copy a whole caption (the tiny ShapesWorld rewriter, docs/results.md).
The paper rewrites the whole caption (``scope="caption"``, the default).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from vlforge.common.errors import VLForgeError
from vlforge.critic.prompts import shipped_prompts

PROMPTS_FILE = "rewrite.yaml"
FIELDS = ("{caption}", "{critiques}")
CRITIQUED = ("inconsistent", "all")
SCOPES = ("caption", "sentence")
SUMMARY = "Summary:"
VERDICT_WORDS = {True: "consistent", False: "inconsistent", None: "unscored"}


@cache
def rewrite_prompts() -> dict[str, str]:
    """The shipped rewrite prompts by name (each holds ``{caption}`` and ``{critiques}`` once)."""
    return shipped_prompts(PROMPTS_FILE, FIELDS)


def critique_summary(critique: str | None, verdict: bool | None) -> str:
    """What the rewrite is told about one sentence (see the module docstring)."""
    if critique:
        lines = [line.strip() for line in critique.splitlines() if line.strip()]
        summaries = [line[len(SUMMARY):].strip() for line in lines if line.startswith(SUMMARY)]
        if summaries:
            return summaries[-1]
        body = " ".join(line for line in lines if not line.lower().lstrip("*").startswith("verdict:"))
        if body:
            return body
    return VERDICT_WORDS[verdict]


def critiques_text(sentences: Sequence[str], verdicts: Sequence[bool | None], critiques: Sequence[str | None],
                   critiqued: str = "inconsistent") -> str:
    """The numbered "sentence Critic: summary" lines of the prompt's ``{critiques}``."""
    if critiqued not in CRITIQUED:
        raise VLForgeError(f"critiqued must be one of {', '.join(CRITIQUED)}, got {critiqued!r}")
    rows = [(s, critique_summary(c, v)) for s, v, c in zip(sentences, verdicts, critiques, strict=True)
            if critiqued == "all" or v is False]
    return " ".join(f"{i}. {sentence} Critic: {summary}" for i, (sentence, summary) in enumerate(rows, start=1))


def rewrite_prompt(caption: str, critiques: str, prompt: str = "fig15") -> str:
    """The instruction asking for ``caption`` rewritten from ``critiques`` with the shipped prompt ``prompt``."""
    prompts = rewrite_prompts()
    if prompt not in prompts:
        raise VLForgeError(f"rewrite prompt {prompt!r} is not one of {', '.join(prompts)}")
    return prompts[prompt].replace("{caption}", caption).replace("{critiques}", critiques)


class GenerativeRewriter:
    """Corrected captions from a generative model. ``model_source``: what ``common.lm.load_generative`` loads
    (``preset:llama_tiny``, a hub name, a folder); ``weights``: a vlforge checkpoint of that architecture (e.g.
    ``critic:rewrite_tiny.yaml``'s); ``prompt``: a name in ``configs/prompts/rewrite.yaml`` (the one the model was
    trained with). Greedy decoding."""

    def __init__(self, model_source: str, weights: str | None = None, prompt: str = "fig15",
                 critiqued: str = "inconsistent", max_new_tokens: int = 256, batch_size: int = 8,
                 prompt_style: str = "chat", device: str = "cpu", scope: str = "caption",
                 **model_options: Any) -> None:
        from vlforge.common.lm.model import GenerativeModel

        rewrite_prompt("", critiques_text([], [], [], critiqued), prompt)  # bad names fail before the model loads
        if scope not in SCOPES:
            raise VLForgeError(f"rewrite scope must be one of {', '.join(SCOPES)}, got {scope!r}")
        self.holder = GenerativeModel(source=model_source, weights=weights, **model_options)
        self.holder.model.to(device)
        self.prompt, self.critiqued, self.prompt_style, self.scope = prompt, critiqued, prompt_style, scope
        self.batch_size = batch_size
        self.decoding = {"max_new_tokens": max_new_tokens, "do_sample": False, "num_beams": 1}

    def rewrite_batch(self, captions: Sequence[str], sentences: Sequence[Sequence[str]],
                      verdicts: Sequence[Sequence[bool | None]],
                      critiques: Sequence[Sequence[str | None]]) -> list[str | None]:
        """Each caption rewritten: the caption itself when no sentence is judged inconsistent, None when the model
        wrote nothing (whole-caption scope)."""
        if self.scope == "sentence":
            return self._by_sentence(captions, sentences, verdicts, critiques)
        asked = [i for i, v in enumerate(verdicts) if False in v]
        prompts = [rewrite_prompt(captions[i], critiques_text(sentences[i], verdicts[i], critiques[i], self.critiqued),
                                  self.prompt) for i in asked]
        out: list[str | None] = list(captions)
        for i, text in zip(asked, self._generate(prompts), strict=True):
            out[i] = text.strip() or None
        return out

    def _by_sentence(self, captions: Sequence[str], sentences: Sequence[Sequence[str]],
                     verdicts: Sequence[Sequence[bool | None]],
                     critiques: Sequence[Sequence[str | None]]) -> list[str | None]:
        asked = [(i, k) for i, v in enumerate(verdicts) for k, verdict in enumerate(v) if verdict is False]
        prompts = [rewrite_prompt(sentences[i][k], critique_summary(critiques[i][k], False), self.prompt)
                   for i, k in asked]
        answers = dict(zip(asked, (t.strip() for t in self._generate(prompts)), strict=True))
        out: list[str | None] = list(captions)
        for i, v in enumerate(verdicts):
            if False in v:
                out[i] = " ".join(t for k, s in enumerate(sentences[i]) if (t := answers.get((i, k), s)))
        return out

    def _generate(self, prompts: list[str]) -> list[str]:
        from vlforge.common.lm.generate import generate_texts

        return generate_texts(self.holder, None, prompts, decoding=self.decoding, batch_size=self.batch_size,
                              prompt_style=self.prompt_style) if prompts else []
