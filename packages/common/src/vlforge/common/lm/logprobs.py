"""Log-probabilities of responses under a causal LM (pure functions, after torchtune's ``rlhf`` helpers).

For logits z [B, T, V] and labels y [B, T] (−100 on prompt, image and padding positions), token t is predicted by
position t−1:

- ``token_logprobs``:     log π(y_t | y_<t, x) = log softmax(z_{t−1})[y_t], with the mask m_t = [y_t ≠ −100];
- ``sequence_logprobs``:  log π(y|x) = Σ_{t ≥ 1} m_t · log π(y_t | y_<t, x), and the count Σ_t m_t;
- ``masked_mean``:        Σ m·v / Σ m (PPO's per-token averages).
"""

from __future__ import annotations

import torch

IGNORE_INDEX = -100


def token_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log-probs [B, T−1] (float32, 0 where masked) and the response mask [B, T−1] (bool)."""
    targets = labels[:, 1:]
    mask = targets != IGNORE_INDEX
    logps = torch.log_softmax(logits[:, :-1, :].float(), dim=-1)
    picked = logps.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return picked * mask, mask


def sequence_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (summed log-probs [B], number of response tokens [B]) in float32."""
    logps, mask = token_logprobs(logits, labels)
    return logps.sum(dim=-1), mask.sum(dim=-1)


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Σ mask·values / Σ mask over ``dim`` (all elements when None); 0 where the mask is empty."""
    mask = mask.to(values.dtype)
    if dim is None:
        return (values * mask).sum() / mask.sum().clamp(min=1)
    return (values * mask).sum(dim=dim) / mask.sum(dim=dim).clamp(min=1)
