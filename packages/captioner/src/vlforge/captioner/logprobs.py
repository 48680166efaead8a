"""Per-sequence log-probability of a response under a causal LM, summed over response tokens only.

For logits z [B, T, V] and labels y [B, T] (−100 on prompt, image and padding positions), token t is predicted by
position t−1:  log π(y|x) = Σ_{t ≥ 1, y_t ≠ −100} log softmax(z_{t−1})[y_t].
"""

from __future__ import annotations

import torch

IGNORE_INDEX = -100


def sequence_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (summed log-probs [B], number of response tokens [B]) in float32."""
    shifted_logits = logits[:, :-1, :].float()
    targets = labels[:, 1:]
    mask = targets != IGNORE_INDEX
    token_logps = torch.log_softmax(shifted_logits, dim=-1).gather(
        -1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (token_logps * mask).sum(dim=-1), mask.sum(dim=-1)
