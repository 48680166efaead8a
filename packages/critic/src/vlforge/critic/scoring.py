"""Scoring (image, sentence) pairs with a trained critic (#12 item 3), two ways:

- ``"critique"``: generate the critique for ``critic_prompt`` and read its verdict with ``parse_verdict``; a
  critique without a verdict line (or one that failed to decode) is unscored (``verdict=None``), never consistent;
- ``"probability"`` (fast, RLAIF-V's first-token idea): one forward pass over ``verdict_prompt`` followed by the
  answer up to the verdict word. At that position, with z_c and z_i the logits of the first tokens at which the
  answers "Verdict: consistent" and "Verdict: inconsistent" differ,

      p(consistent) = exp(z_c) / (exp(z_c) + exp(z_i))

  and the verdict is consistent when p(consistent) >= 0.5. Batched; the answer is tokenized exactly as the SFT
  collator tokenized it in training (prompt and response apart, the chat template's assistant turn).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from vlforge.common.errors import VLForgeError
from vlforge.common.lm.collate import SFTCollator
from vlforge.common.lm.generate import generate_sequences
from vlforge.common.lm.logprobs import IGNORE_INDEX
from vlforge.common.lm.prompts import render, tokenizer_of
from vlforge.critic.prompts import critic_prompt, verdict_prompt
from vlforge.critic.verdicts import parse_verdict, verdict_line

SCORING_MODES = ("probability", "critique")
CRITIQUE_DECODING = {"max_new_tokens": 384, "num_beams": 1, "do_sample": False}


@dataclass
class SentenceScore:
    """A sentence's verdict (None: unscored), p(consistent) in the fast mode, the critique in the generative one."""

    verdict: bool | None
    p_consistent: float | None = None
    critique: str | None = None


def verdict_token_ids(processor: Any, prompt_style: str = "chat") -> tuple[int, int, int]:
    """(k, id_c, id_i): the answers' tokens agree on their first k tokens; token k is id_c or id_i."""
    tokenizer = tokenizer_of(processor)
    answers = [tokenizer(render(processor, "", verdict_line(v), image=False, style=prompt_style).response,
                         add_special_tokens=False)["input_ids"] for v in (True, False)]
    k = 0
    while k < min(map(len, answers)) and answers[0][k] == answers[1][k]:
        k += 1
    if k == min(map(len, answers)):
        raise VLForgeError("the tokenizer does not tell 'Verdict: consistent' and 'Verdict: inconsistent' apart")
    return k, answers[0][k], answers[1][k]


def verdict_probabilities(model: torch.nn.Module, processor: Any, images: Sequence[Image.Image],
                          sentences: Sequence[str], instruction: str = "fig14", prompt_style: str = "chat",
                          batch_size: int = 16) -> list[float]:
    """p(consistent) of each (image, sentence) pair (module docstring), one forward pass per batch."""
    if len(images) != len(sentences):
        raise VLForgeError(f"verdict_probabilities: {len(images)} images but {len(sentences)} sentences")
    k, id_c, id_i = verdict_token_ids(processor, prompt_style)
    collator = SFTCollator(processor, prompt_style=prompt_style)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out: list[float] = []
    try:
        with torch.inference_mode():
            for start in range(0, len(sentences), batch_size):
                examples = [{"image": image, "instruction": verdict_prompt(sentence, instruction),
                             "response": verdict_line(True)}
                            for image, sentence in zip(images[start:start + batch_size],
                                                       sentences[start:start + batch_size], strict=True)]
                batch = {key: value.to(device) for key, value in collator(examples).items()}
                labels = batch.pop("labels")
                logits = model(**batch, use_cache=False).logits
                first_response = (labels != IGNORE_INDEX).int().argmax(dim=1)
                position = first_response + k - 1  # the logits there predict the answer's token k
                rows = torch.arange(labels.shape[0], device=device)
                pair = logits[rows, position][:, [id_c, id_i]].float()
                out += torch.softmax(pair, dim=-1)[:, 0].tolist()
    finally:
        model.train(was_training)
    return out


def critique_verdicts(model: torch.nn.Module, processor: Any, images: Sequence[Image.Image],
                      sentences: Sequence[str], instruction: str = "fig14", prompt_style: str = "chat",
                      decoding: dict[str, Any] | None = None, batch_size: int = 16) -> list[SentenceScore]:
    """Generated critiques and their parsed verdicts (None when a critique has no verdict line). Decoded here from
    the generated ids: ``generate_texts`` joins whitespace into single spaces, which would merge the verdict line
    into the summary."""
    prompts = [critic_prompt(s, instruction) for s in sentences]
    generated = generate_sequences(model, processor, prompts, list(images), decoding or CRITIQUE_DECODING, batch_size,
                                   prompt_style, with_logprobs=False)
    tokenizer = tokenizer_of(processor)
    texts = [tokenizer.decode(g.response_ids, skip_special_tokens=True).strip() for g in generated]
    return [SentenceScore(parse_verdict(text), critique=text) for text in texts]


def score_sentences(model: torch.nn.Module, processor: Any, images: Sequence[Image.Image],
                    sentences: Sequence[str], mode: str = "probability", instruction: str = "fig14",
                    prompt_style: str = "chat", decoding: dict[str, Any] | None = None,
                    batch_size: int = 16) -> list[SentenceScore]:
    """Score each (image, sentence) pair in ``mode`` ("probability" or "critique")."""
    if mode == "probability":
        probabilities = verdict_probabilities(model, processor, images, sentences, instruction, prompt_style,
                                              batch_size)
        return [SentenceScore(None if p != p else p >= 0.5, p_consistent=p) for p in probabilities]  # NaN: unscored
    if mode == "critique":
        return critique_verdicts(model, processor, images, sentences, instruction, prompt_style, decoding,
                                 batch_size)
    raise VLForgeError(f"scoring mode {mode!r} is not one of {', '.join(SCORING_MODES)}")
