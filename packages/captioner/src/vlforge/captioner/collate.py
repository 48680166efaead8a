"""Turn (image, instruction, response) examples into padded model batches with loss on response tokens only.

The prompt is the processor's chat template (user turn: the image and the instruction; generation prompt on). The
response segment is what the template writes after that prompt for the assistant turn (so its end-of-turn tokens are
learned too); where a template cannot be split that way, the response is followed by the tokenizer's EOS. Prompt and
response are tokenized separately and concatenated; labels are −100 on the prompt (image tokens included) and on
padding. Sequences are right-padded. Vision tensors (``pixel_values``, ``image_grid_thw``, ...) are concatenated
along their first dimension; per-token tensors (e.g. ``mm_token_type_ids``) are extended with zeros.
"""

from __future__ import annotations

from typing import Any

import torch

from vlforge.captioner.logprobs import IGNORE_INDEX
from vlforge.common.errors import VLForgeError


def user_turn(instruction: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": instruction}]}]


def chat_prompt(processor: Any, instruction: str) -> str:
    """The text prompt (image placeholder included) that asks ``processor``'s model for a response."""
    if not getattr(processor, "chat_template", None):
        raise VLForgeError(f"processor {type(processor).__name__} has no chat template; set one before captioning")
    return processor.apply_chat_template(user_turn(instruction), add_generation_prompt=True, tokenize=False)


def response_text(processor: Any, instruction: str, response: str) -> str:
    """The text the chat template places after the generation prompt for ``response`` (end-of-turn included)."""
    prompt = chat_prompt(processor, instruction)
    conversation = user_turn(instruction) + [{"role": "assistant", "content": [{"type": "text", "text": response}]}]
    full = processor.apply_chat_template(conversation, tokenize=False)
    if full.startswith(prompt) and response in full[len(prompt):]:
        return full[len(prompt):]
    return response + processor.tokenizer.eos_token


class CaptionCollator:
    """Callable collator for SFT (``response`` key) and preference pairs (``chosen`` then ``rejected`` rows)."""

    def __init__(self, processor: Any, max_length: int | None = None) -> None:
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.max_length = max_length
        if self.tokenizer.pad_token_id is None:
            raise VLForgeError(f"tokenizer {type(self.tokenizer).__name__} has no pad token")

    def encode(self, example: dict[str, Any], response: str) -> dict[str, torch.Tensor]:
        """One sequence: ``input_ids`` and ``labels`` [T] plus the processor's vision tensors (batch dim 1)."""
        instruction = example["instruction"]
        encoded = self.processor(text=[chat_prompt(self.processor, instruction)], images=[example["image"]],
                                 return_tensors="pt")
        prompt_ids = encoded["input_ids"][0]
        answer = response_text(self.processor, instruction, response)
        response_ids = torch.tensor(self.tokenizer(answer, add_special_tokens=False)["input_ids"], dtype=torch.long)
        if self.max_length is not None:
            room = self.max_length - prompt_ids.numel()
            if room < 1:
                raise VLForgeError(f"example {example.get('key', '?')!r}: prompt of {prompt_ids.numel()} tokens "
                                   f"leaves no room under max_length {self.max_length}")
            response_ids = response_ids[:room]
        out = {"input_ids": torch.cat([prompt_ids, response_ids]),
               "labels": torch.cat([torch.full_like(prompt_ids, IGNORE_INDEX), response_ids])}
        for key, value in encoded.items():
            if key in ("input_ids", "attention_mask") or not isinstance(value, torch.Tensor):
                continue
            if value.dim() == 2 and value.shape == encoded["input_ids"].shape:  # per-token tensor
                value = torch.cat([value[0], value.new_zeros(response_ids.numel())])
                out[f"token:{key}"] = value
            else:
                out[key] = value
        return out

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
        for key in sequences[0]:
            if key in out:
                continue
            if key.startswith("token:"):
                padded = sequences[0][key].new_zeros((batch, length))
                for row, seq in enumerate(sequences):
                    padded[row, :seq[key].numel()] = seq[key]
                out[key[len("token:"):]] = padded
            else:
                out[key] = torch.cat([seq[key] for seq in sequences], dim=0)
        return out

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if not examples:
            raise VLForgeError("cannot collate an empty batch")
        if "response" in examples[0]:
            return self.pad([self.encode(e, e["response"]) for e in examples])
        if "chosen" in examples[0] and "rejected" in examples[0]:
            chosen = [self.encode(e, e["chosen"]) for e in examples]
            rejected = [self.encode(e, e["rejected"]) for e in examples]
            return self.pad(chosen + rejected)
        raise VLForgeError(f"example {examples[0].get('key', '?')!r} has neither 'response' nor 'chosen'/'rejected'")
