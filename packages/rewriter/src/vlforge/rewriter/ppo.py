"""PPO pieces of the query rewriter's third training step (query-rewriter paper §3.4, Eqs. 4-5), as plain torch
functions over [B, T] tensors in the style of torchtune's ``rlhf`` module.

Shapes: B rollouts, T token positions (prompt and response together or the response alone); ``mask`` [B, T] is
1 on response tokens and 0 elsewhere (prompt, padding). Response tokens are contiguous in each row.

- ``retrieval_reward``: Eq. 4, r(x, y) = 20·(s_clip(y, v_x) − s_clip(x, v_x)).
- ``kl_penalised_rewards``: per token −β·(log π − log π_ref), plus r(x, y) on the last response token (the
  token-level form of Eq. 5's r(x, y) − β·log π(y|x)/π_ref(y|x)).
- ``gae``: generalised advantage estimation (Schulman et al. 2016) with the value after the last response
  token taken as 0; returns = advantages + values.
- ``policy_loss`` / ``value_loss``: PPO's clipped surrogate and clipped value loss (Schulman et al. 2017).
- ``masked_mean``, ``masked_var``, ``whiten``: statistics over response tokens only.

TRL 1.16 ships none of these (it removed PPOTrainer and its ``masked_whiten``/``AdaptiveKLController``), so
the tests compare against direct element-by-element implementations.
"""

from __future__ import annotations

import torch

from vlforge.common.errors import VLForgeError

REWARD_SCALE = 20.0


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Σ values·mask / Σ mask, over every element or along ``dim``."""
    mask = mask.to(values.dtype)
    if dim is None:
        return (values * mask).sum() / mask.sum()
    return (values * mask).sum(dim) / mask.sum(dim)


def masked_var(values: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance of the masked elements (Bessel-corrected when ``unbiased``)."""
    mean = masked_mean(values, mask)
    variance = masked_mean((values - mean) ** 2, mask)
    if unbiased:
        count = mask.sum()
        if count < 2:
            raise VLForgeError("masked_var needs at least 2 unmasked elements for an unbiased variance")
        variance = variance * count / (count - 1)
    return variance


def whiten(values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """(values − mean) / sqrt(var + eps) over the masked elements (unbiased var); the mean is added back when
    ``shift_mean`` is False. Elements outside the mask are transformed too but carry no meaning."""
    mean, variance = masked_mean(values, mask), masked_var(values, mask)
    whitened = (values - mean) * torch.rsqrt(variance + eps)
    return whitened if shift_mean else whitened + mean


def retrieval_reward(rewrite_scores: torch.Tensor, query_scores: torch.Tensor,
                     scale: float = REWARD_SCALE) -> torch.Tensor:
    """Eq. 4: r(x, y) = scale·(s_clip(y, v_x) − s_clip(x, v_x)), per rollout [B]; the paper's scale is 20."""
    return scale * (rewrite_scores - query_scores)


def last_response_index(mask: torch.Tensor) -> torch.Tensor:
    """Index [B] of each row's last response token; a row without one is an error."""
    if mask.dim() != 2:
        raise VLForgeError(f"mask must be [B, T], got {tuple(mask.shape)}")
    has_response = mask.bool().any(dim=1)
    if not bool(has_response.all()):
        rows = torch.nonzero(~has_response).flatten().tolist()
        raise VLForgeError(f"rollouts {rows} have no response token (empty rewrite)")
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    return torch.where(mask.bool(), positions, -1).max(dim=1).values


def sequence_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Σ_t (log π − log π_ref) over each rollout's response tokens [B]: the KL estimate whose batch mean the
    adaptive controller tracks."""
    return ((logprobs - ref_logprobs) * mask.to(logprobs.dtype)).sum(dim=1)


def kl_penalised_rewards(sequence_rewards: torch.Tensor, logprobs: torch.Tensor, ref_logprobs: torch.Tensor,
                         mask: torch.Tensor, kl_coef: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token rewards [B, T] and per-token KL [B, T].

    kl_t = log π(y_t) − log π_ref(y_t) on response tokens (0 elsewhere); reward_t = −β·kl_t, and the sequence
    reward r(x, y) [B] is added on each row's last response token.
    """
    if not (logprobs.shape == ref_logprobs.shape == mask.shape) or sequence_rewards.shape != logprobs.shape[:1]:
        raise VLForgeError(f"kl_penalised_rewards: shapes disagree: rewards {tuple(sequence_rewards.shape)}, "
                           f"logprobs {tuple(logprobs.shape)}, ref {tuple(ref_logprobs.shape)}, "
                           f"mask {tuple(mask.shape)}")
    kl = (logprobs - ref_logprobs) * mask.to(logprobs.dtype)
    rewards = -kl_coef * kl
    last = last_response_index(mask)
    rows = torch.arange(rewards.shape[0], device=rewards.device)
    rewards[rows, last] += sequence_rewards.to(rewards.dtype)
    return rewards, kl


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float,
        lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over [B, T]:

        δ_t = r_t + γ·V_{t+1} − V_t,   A_t = δ_t + γλ·A_{t+1}

    on response tokens, with V_{t+1} = 0 and A_{t+1} = 0 after the last response token. Advantages are 0
    outside the mask; returns = advantages + values.
    """
    if not (rewards.shape == values.shape == mask.shape) or rewards.dim() != 2:
        raise VLForgeError(f"gae needs rewards, values and mask of one shape [B, T]; got {tuple(rewards.shape)}, "
                           f"{tuple(values.shape)}, {tuple(mask.shape)}")
    mask = mask.to(values.dtype)
    values = values * mask
    advantages = torch.zeros_like(values)
    next_value = torch.zeros_like(values[:, 0])
    next_advantage = torch.zeros_like(values[:, 0])
    for t in reversed(range(values.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        advantages[:, t] = (delta + gamma * lam * next_advantage) * mask[:, t]
        next_value, next_advantage = values[:, t], advantages[:, t]
    return advantages, advantages + values


def policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                mask: torch.Tensor, clip_range: float) -> dict[str, torch.Tensor]:
    """PPO's clipped surrogate: masked mean of max(−A·ρ, −A·clip(ρ, 1−ε, 1+ε)), ρ = exp(log π − log π_old).
    Also returns ``clipfrac`` (share of tokens where the clipped term won) and ``approx_kl`` (masked mean of
    ½(log ρ)²)."""
    log_ratio = logprobs - old_logprobs
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    return {"loss": masked_mean(torch.maximum(unclipped, clipped), mask),
            "clipfrac": masked_mean((clipped > unclipped).to(logprobs.dtype), mask).detach(),
            "approx_kl": masked_mean(0.5 * log_ratio.detach() ** 2, mask)}


def value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
               clip_range: float) -> dict[str, torch.Tensor]:
    """PPO's clipped value loss: ½·masked mean of max((V − R)², (V_clip − R)²) with V_clip = V_old +
    clip(V − V_old, −c, c). Also returns ``clipfrac``."""
    clipped_values = old_values + torch.clamp(values - old_values, -clip_range, clip_range)
    unclipped_error = (values - returns) ** 2
    clipped_error = (clipped_values - returns) ** 2
    return {"loss": 0.5 * masked_mean(torch.maximum(unclipped_error, clipped_error), mask),
            "clipfrac": masked_mean((clipped_error > unclipped_error).to(values.dtype), mask).detach()}
