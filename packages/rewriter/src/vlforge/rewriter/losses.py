"""PRO, the listwise ranking loss of the query rewriter's second training step (query-rewriter paper, §3.3).

Eq. 3 (Song et al., "Preference Ranking Optimization for Human Alignment"), with n candidates y_1..y_n of
query x sorted so that r(y_1) ≥ … ≥ r(y_n)::

    L_PRO = −E Σ_{j=1}^{n−1} log [ exp(π(y_j|x) / T_j^j) / Σ_{i=j}^{n} exp(π(y_i|x) / T_j^i) ]
    T_j^i = 1 / (r(y_j) − r(y_i))  (i > j),   T_j^j = min_{i>j} T_j^i

with π(y|x) the length-normalised log-probability s = log p(y|x) / |y|. Dividing by T is multiplying by the
reward gap, so with D_j = max_{i>j} (r_j − r_i) each term is

    −s_j·D_j + log( exp(s_j·D_j) + Σ_{i>j} exp(s_i·(r_j − r_i)) ),

computed here with a log-sum-exp (no overflow for large rewards, no underflow for long candidates).
"""

from __future__ import annotations

import torch

from vlforge.common.errors import VLForgeError


def _check(logps: torch.Tensor, lengths: torch.Tensor, rewards: torch.Tensor) -> None:
    if logps.dim() != 2 or logps.shape != lengths.shape or logps.shape != rewards.shape:
        raise VLForgeError(f"pro_loss needs logps, lengths and rewards of one shape [B, n]; got "
                           f"{tuple(logps.shape)}, {tuple(lengths.shape)}, {tuple(rewards.shape)}")
    if logps.shape[1] < 2:
        raise VLForgeError(f"pro_loss needs at least 2 candidates per query, got {logps.shape[1]}")
    if not bool(torch.isfinite(rewards).all()):
        raise VLForgeError("pro_loss: rewards contain NaN or infinity")
    if bool((lengths <= 0).any()):
        raise VLForgeError("pro_loss: every candidate needs at least one token (a length is <= 0)")


def pro_loss(logps: torch.Tensor, lengths: torch.Tensor, rewards: torch.Tensor,
             sft_weight: float = 0.0) -> dict[str, torch.Tensor]:
    """PRO's listwise ranking loss (Eq. 3) plus an optional SFT term on the best candidate.

    logps: [B, n] summed log-probabilities of n candidates per query; lengths: [B, n] their token counts;
    rewards: [B, n] their retriever scores in any order (ranked here, highest first; ties keep input order).
    Returns ``{"ranking", "sft", "loss"}``: ``ranking`` the batch mean of Eq. 3's sum over j (see the module
    docstring), ``sft`` the batch mean of −s_1 (the best candidate's per-token NLL) and ``loss = ranking +
    sft_weight·sft``.

    Against the PRO authors' code (DAMO-ConvAI, ``PRO/train/utils/process_manager.py``): the ranking term is the
    same formula, but theirs adds 1e-10 inside the log and exponentiates without a max shift (overflow for
    large reward gaps), and expects candidates already sorted by reward. Their SFT term is
    ``sft_weight·(n−1)²·mean(−log p(y_sft|x))`` on the *summed* (not length-normalised) log-probability of the
    candidate at ``sft_index``; here it is ``sft_weight·mean(−s_1)`` with s_1 normalised and no (n−1)² factor,
    so with sft_index the best candidate and every best candidate |y| tokens long, their sft_weight w gives
    the same loss as ours set to w·(n−1)²·|y|.
    """
    _check(logps, lengths, rewards)
    order = torch.sort(rewards.detach(), dim=1, descending=True, stable=True).indices
    scores = torch.gather(logps / lengths.to(logps.dtype), 1, order)  # s_k, ranked
    ranked_rewards = torch.gather(rewards.to(scores.dtype), 1, order)
    n = scores.shape[1]
    ranking = scores.new_zeros(scores.shape[0])
    for j in range(n - 1):
        gaps = ranked_rewards[:, j:j + 1] - ranked_rewards[:, j + 1:]  # [B, n−j−1], r_j − r_i ≥ 0
        best_gap = gaps.max(dim=1).values  # D_j
        positive = scores[:, j] * best_gap
        logits = torch.cat([positive.unsqueeze(1), scores[:, j + 1:] * gaps], dim=1)
        ranking = ranking + torch.logsumexp(logits, dim=1) - positive
    ranking = ranking.mean()
    sft = (-scores[:, 0]).mean()
    return {"ranking": ranking, "sft": sft, "loss": ranking + sft_weight * sft}
