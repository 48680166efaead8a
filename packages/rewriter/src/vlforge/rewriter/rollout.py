"""PPO rollouts of the rewriter as training tensors (no Lightning): generated rewrites (``vlforge.common.lm``
generation: prompt ids, response ids and their log-probs under the behaviour policy) packed into right-padded
[B, T] inputs, and per-token tensors [B, T−1] aligned with :func:`vlforge.common.lm.logprobs.token_logprobs`
(position t−1 holds token t). Rollouts that cannot be rewarded are screened out with a reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from vlforge.common.lm.generate import GeneratedSequence
from vlforge.common.lm.logprobs import IGNORE_INDEX

EMPTY, OVER_LENGTH, NAN_REWARD = "empty_rewrite", "rewrite_over_length", "nan_reward"


@dataclass
class PackedRollouts:
    """``input_ids``, ``attention_mask``, ``labels`` [B, T]; ``old_logprobs`` and ``mask`` [B, T−1] (response
    tokens of the rows kept; a screened-out row has an all-zero mask)."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor
    old_logprobs: torch.Tensor
    mask: torch.Tensor


def screen(sequence: GeneratedSequence, reward: float, eos_token_id: int, max_new_tokens: int) -> str | None:
    """Why a rollout cannot be trained on (``EMPTY``, ``OVER_LENGTH``: no EOS within ``max_new_tokens``,
    ``NAN_REWARD``), or None."""
    if not sequence.text.strip():
        return EMPTY
    ended = sequence.response_ids.numel() > 0 and int(sequence.response_ids[-1]) == eos_token_id
    if not ended and sequence.response_ids.numel() >= max_new_tokens:
        return OVER_LENGTH
    if not math.isfinite(reward):
        return NAN_REWARD
    return None


def pack_rollouts(sequences: list[GeneratedSequence], keep: list[bool], pad_token_id: int) -> PackedRollouts:
    """Prompt + response per row, right-padded; ``mask`` marks the response tokens of the rows in ``keep``."""
    width = max(s.prompt_ids.numel() + s.response_ids.numel() for s in sequences)
    batch = len(sequences)
    input_ids = torch.full((batch, width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((batch, width), dtype=torch.long)
    labels = torch.full((batch, width), IGNORE_INDEX, dtype=torch.long)
    old_logprobs = torch.zeros((batch, width - 1))
    mask = torch.zeros((batch, width - 1))
    for row, (sequence, kept) in enumerate(zip(sequences, keep, strict=True)):
        prompt, response = sequence.prompt_ids.numel(), sequence.response_ids.numel()
        input_ids[row, :prompt + response] = torch.cat([sequence.prompt_ids, sequence.response_ids])
        attention_mask[row, :prompt + response] = 1
        labels[row, prompt:prompt + response] = sequence.response_ids
        if kept and response:
            old_logprobs[row, prompt - 1:prompt - 1 + response] = sequence.logprobs
            mask[row, prompt - 1:prompt - 1 + response] = 1.0
    return PackedRollouts(input_ids, attention_mask, labels, old_logprobs, mask)
