"""Preference loss of the ultra-detailed captioning paper (Eq. 1-4): DPO + length-normalised SFT + BCO.

With the rewards r_c = β·log πθ(y_c|x)/π0(y_c|x) and r_r = β·log πθ(y_r|x)/π0(y_r|x) of a chosen and a rejected
caption (πθ the policy, π0 the frozen reference):

    L_DPO = −log σ(r_c − r_r)                                   (Eq. 1)
    L_SFT = −log πθ(y_c|x) / |y_c|                              (Eq. 2, per-token negative log-likelihood)
    L_BCO = −log σ(r_c − δ) − log σ(−(r_r − δ))                 (Eq. 3)
    L     = a1·L_DPO + a2·L_SFT + a3·L_BCO                      (Eq. 4; paper: a = (0.8, 1.0, 0.2), β = 0.1)

δ, the reward shift, is the running mean of the rewards seen so far; it lives outside the loss
(:class:`vlforge.common.lm.running.RunningMean`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vlforge.common.errors import VLForgeError


def preference_loss(
    policy_chosen_logps: torch.Tensor,
    policy_rejected_logps: torch.Tensor,
    ref_chosen_logps: torch.Tensor,
    ref_rejected_logps: torch.Tensor,
    chosen_lengths: torch.Tensor,
    beta: float = 0.1,
    delta: float | torch.Tensor = 0.0,
    weights: tuple[float, float, float] = (0.8, 1.0, 0.2),
) -> dict[str, torch.Tensor]:
    """The combined preference loss (Eq. 1-4) from per-sequence summed log-probs (float tensors [B]).

    ``chosen_lengths`` counts the chosen response tokens ([B]). Returns ``loss`` (the weighted sum), ``dpo``, ``sft``
    and ``bco`` (each the batch mean of its per-sequence term) and the detached per-sequence ``chosen_rewards`` and
    ``rejected_rewards`` ([B]).
    """
    if len(weights) != 3:
        raise VLForgeError(f"preference_loss weights must be three numbers (a1, a2, a3), got {weights!r}")
    shapes = {t.shape for t in (policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps)}
    if len(shapes) != 1 or policy_chosen_logps.dim() != 1:
        raise VLForgeError(f"preference_loss needs four log-prob tensors of one shape [B], got {sorted(shapes)}")
    chosen_rewards = beta * (policy_chosen_logps - ref_chosen_logps)
    rejected_rewards = beta * (policy_rejected_logps - ref_rejected_logps)
    if isinstance(delta, torch.Tensor):
        delta = delta.detach().to(chosen_rewards)

    dpo = -F.logsigmoid(chosen_rewards - rejected_rewards)
    sft = -policy_chosen_logps / chosen_lengths.to(policy_chosen_logps).clamp(min=1)
    bco = -F.logsigmoid(chosen_rewards - delta) - F.logsigmoid(-(rejected_rewards - delta))

    a1, a2, a3 = weights
    terms = {"dpo": dpo.mean(), "sft": sft.mean(), "bco": bco.mean()}
    return {
        "loss": a1 * terms["dpo"] + a2 * terms["sft"] + a3 * terms["bco"],
        **terms,
        "chosen_rewards": chosen_rewards.detach(),
        "rejected_rewards": rejected_rewards.detach(),
    }
