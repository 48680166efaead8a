"""One SFT collator: plain dicts ``{image?, instruction, response}`` or ``{image?, instruction, responses: [k]}``
into padded model batches with the loss on response tokens only (after litgpt's SFT collate).

The prompt (:mod:`vlforge.common.lm.prompts`, a style by name) and each response are tokenized separately and
concatenated; labels are −100 on the prompt (image tokens included) and on padding, so the labels follow the
template's offsets exactly. With k responses per prompt (preference pairs: k = 2, ``chosen`` / ``rejected`` keys
also accepted; ranked lists for PRO: k = n) the batch holds the B first responses, then the B second ones, ...
(row j·B + i is response j of example i). A multi-turn conversation ``{image?, turns: [[instruction, response],
...]}`` (LLaVA's instruction data; the image in the first user turn) is one sequence with the loss on every
assistant turn (:func:`~vlforge.common.lm.prompts.render_turns`). Sequences are right-padded; a batch may mix
examples with and without an image (the vision tensors hold the images in example order). Vision tensors
(``pixel_values``, ``image_grid_thw``, ...) are concatenated along their first dimension; per-token tensors (e.g.
``mm_token_type_ids``) are extended with zeros.

A response whose tokens do not all survive — cut by ``max_length``, entirely when the prompt leaves no room; the
prompt, and with it the image tokens, is never cut — or
whose chat template could not be split at the response is counted in :attr:`SFTCollator.counts` and reported with
a warning naming the example's ``key``; it is never silently dropped from the loss (LLaVA's ``preprocess_v1``
zeroes such labels without a word).
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import torch

from vlforge.common.errors import VLForgeError
from vlforge.common.lm.logprobs import IGNORE_INDEX
from vlforge.common.lm.prompts import render, render_turns, takes_images, tokenizer_of

log = logging.getLogger(__name__)
COUNTED = ("sequences", "truncated", "lost", "template_fallback")


def responses_of(example: dict[str, Any]) -> list[str]:
    """The example's responses: ``response`` (k = 1), ``responses`` (k) or ``chosen`` and ``rejected`` (k = 2)."""
    if "response" in example:
        return [example["response"]]
    if "responses" in example:
        responses = list(example["responses"])
        if not responses or not all(isinstance(r, str) for r in responses):
            raise VLForgeError(f"example {example.get('key', '?')!r}: 'responses' must be a non-empty list of texts")
        return responses
    if "chosen" in example and "rejected" in example:
        return [example["chosen"], example["rejected"]]
    raise VLForgeError(f"example {example.get('key', '?')!r} has none of 'response', 'responses', "
                       "'chosen'/'rejected'")


class SFTCollator:
    """Callable collator; ``counts`` accumulates sequences, truncated / lost responses and template fallbacks."""

    def __init__(self, processor: Any, max_length: int | None = None, prompt_style: str = "chat") -> None:
        self.processor = processor
        self.tokenizer = tokenizer_of(processor)
        self.max_length = max_length
        self.prompt_style = prompt_style
        self.multimodal = takes_images(processor)
        self.counts: Counter[str] = Counter(dict.fromkeys(COUNTED, 0))
        if self.tokenizer.pad_token_id is None:
            raise VLForgeError(f"tokenizer {type(self.tokenizer).__name__} has no pad token")

    def _prompt(self, example: dict[str, Any], prompt: str) -> dict[str, torch.Tensor]:
        image = example.get("image")
        if image is not None:
            if not self.multimodal:
                raise VLForgeError(f"example {example.get('key', '?')!r} has an image but the model is text-only")
            return self.processor(text=[prompt], images=[image], return_tensors="pt")
        return self.tokenizer(prompt, return_tensors="pt")

    def encode(self, example: dict[str, Any], response: str) -> dict[str, torch.Tensor]:
        """One sequence: ``input_ids`` and ``labels`` [T] plus the processor's vision tensors (batch dim 1)."""
        rendered = render(self.processor, example.get("instruction", ""), response,
                          image=example.get("image") is not None, style=self.prompt_style)
        encoded = self._prompt(example, rendered.prompt)
        prompt_ids = encoded["input_ids"][0]
        response_ids = torch.tensor(self.tokenizer(rendered.response, add_special_tokens=False)["input_ids"],
                                    dtype=torch.long)
        self.counts["sequences"] += 1
        if not rendered.split:
            self._report(example, "template_fallback", "the chat template could not be split at the response; "
                                                       "trained on the response + EOS")
        if self.max_length is not None and prompt_ids.numel() + response_ids.numel() > self.max_length:
            room = max(0, self.max_length - prompt_ids.numel())
            lost = room == 0
            self._report(example, "lost" if lost else "truncated",
                         f"max_length {self.max_length} keeps {room} of its {response_ids.numel()} response tokens")
            response_ids = response_ids[:room]
        out = {"input_ids": torch.cat([prompt_ids, response_ids]),
               "labels": torch.cat([torch.full_like(prompt_ids, IGNORE_INDEX), response_ids])}
        return self._vision_tensors(encoded, out, response_ids.numel())

    def encode_turns(self, example: dict[str, Any]) -> dict[str, torch.Tensor]:
        """One multi-turn sequence: the first prompt segment (with the image) through the processor, the rest
        tokenized on their own; labels on the response segments. ``max_length`` cuts from the end: a cut response
        counts as truncated (lost when no response token is left)."""
        turns = [(str(instruction), str(response)) for instruction, response in example["turns"]]
        segments, split = render_turns(self.processor, turns, image=example.get("image") is not None,
                                       style=self.prompt_style)
        encoded = self._prompt(example, segments[0].text)
        pieces = [(encoded["input_ids"][0], False)]
        pieces += [(torch.tensor(self.tokenizer(seg.text, add_special_tokens=False)["input_ids"], dtype=torch.long),
                    seg.response) for seg in segments[1:]]
        self.counts["sequences"] += 1
        if not split:
            self._report(example, "template_fallback", "the chat template could not be split at the responses; "
                                                       "trained on each response + EOS")
        room = self.max_length if self.max_length is not None else sum(p.numel() for p, _ in pieces)
        room = max(room, pieces[0][0].numel())
        ids, labels, kept, total = [], [], 0, 0
        for index, (piece, is_response) in enumerate(pieces):
            cut = piece[:max(0, room - sum(p.numel() for p in ids))] if index else piece
            ids.append(cut)
            labels.append(cut if is_response else torch.full_like(cut, IGNORE_INDEX))
            if is_response:
                kept, total = kept + cut.numel(), total + piece.numel()
        if kept < total:
            self._report(example, "lost" if kept == 0 else "truncated",
                         f"max_length {self.max_length} keeps {kept} of its {total} response tokens")
        out = {"input_ids": torch.cat(ids), "labels": torch.cat(labels)}
        return self._vision_tensors(encoded, out, out["input_ids"].numel() - pieces[0][0].numel())

    def _vision_tensors(self, encoded: dict[str, torch.Tensor], out: dict[str, torch.Tensor],
                        appended: int) -> dict[str, torch.Tensor]:
        """``out`` plus the processor's other tensors of the prompt: per-token ones extended by ``appended`` zeros,
        vision ones as they are."""
        for key, value in encoded.items():
            if key in ("input_ids", "attention_mask") or not isinstance(value, torch.Tensor):
                continue
            if value.dim() == 2 and value.shape == encoded["input_ids"].shape:  # per-token tensor
                out[f"token:{key}"] = torch.cat([value[0], value.new_zeros(appended)])
            else:
                out[key] = value
        return out

    def _report(self, example: dict[str, Any], what: str, why: str) -> None:
        self.counts[what] += 1
        log.warning("example %r: %s", example.get("key", "?"), why)

    def pad(self, sequences: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        length = max(s["input_ids"].numel() for s in sequences)
        batch = len(sequences)
        input_ids = torch.full((batch, length), self.tokenizer.pad_token_id, dtype=torch.long)
        labels = torch.full((batch, length), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((batch, length), dtype=torch.long)
        for row, seq in enumerate(sequences):
            n = seq["input_ids"].numel()
            input_ids[row, :n] = seq["input_ids"]
            labels[row, :n] = seq["labels"]
            attention_mask[row, :n] = 1
        out = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
        keys = dict.fromkeys(key for seq in sequences for key in seq)  # examples without an image lack some
        for key in keys:
            if key in out:
                continue
            having = [(row, seq[key]) for row, seq in enumerate(sequences) if key in seq]
            if key.startswith("token:"):
                padded = having[0][1].new_zeros((batch, length))
                for row, value in having:
                    padded[row, :value.numel()] = value
                out[key[len("token:"):]] = padded
            else:
                out[key] = torch.cat([value for _, value in having], dim=0)
        return out

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if not examples:
            raise VLForgeError("cannot collate an empty batch")
        if any("turns" in e for e in examples):
            if not all("turns" in e for e in examples):
                raise VLForgeError(f"a batch mixes conversations ('turns') with single responses (e.g. "
                                   f"{examples[0].get('key', '?')!r})")
            return self.pad([self.encode_turns(e) for e in examples])
        responses = [responses_of(e) for e in examples]
        k = len(responses[0])
        if any(len(r) != k for r in responses):
            raise VLForgeError(f"every example of a batch needs the same number of responses ({k} in "
                               f"{examples[0].get('key', '?')!r})")
        return self.pad([self.encode(e, r[j]) for j in range(k) for e, r in zip(examples, responses, strict=True)])
