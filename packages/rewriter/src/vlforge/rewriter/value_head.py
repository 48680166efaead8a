"""The PPO value head: a scalar value per token from the policy's last hidden states (no Lightning)."""

from __future__ import annotations

import torch
from torch import nn


class ValueHead(nn.Module):
    """V(s_t) = w·dropout(h_t) + b for hidden states h [B, T, H] → values [B, T]. The weights start at zero
    so the first value estimates are 0 and the first advantages are the rewards-to-go."""

    def __init__(self, hidden_size: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.summary = nn.Linear(hidden_size, 1)
        nn.init.zeros_(self.summary.weight)
        nn.init.zeros_(self.summary.bias)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.summary(self.dropout(hidden_states.to(self.summary.weight.dtype))).squeeze(-1)
