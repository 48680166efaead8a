"""Adaptive KL coefficient for PPO (Ziegler et al. 2019, §2.2; the query-rewriter paper's Eq. 5 uses it).

    e_t = clip(KL_t / KL_target − 1, −0.2, 0.2)
    β_{t+1} = β_t · (1 + K_β · e_t),   K_β = n_steps / horizon

The state (β, target, horizon) is saved with a checkpoint and restored exactly (``state_dict`` /
``load_state_dict``).
"""

from __future__ import annotations

import math
from typing import Any

from vlforge.common.errors import VLForgeError

ERROR_CLIP = 0.2


class AdaptiveKLController:
    """β adapted towards a target KL: ``update(current_kl, n_steps)`` then ``value``."""

    def __init__(self, init_kl_coef: float, target: float, horizon: int) -> None:
        if init_kl_coef < 0 or target <= 0 or horizon <= 0:
            raise VLForgeError(f"AdaptiveKLController needs init_kl_coef >= 0, target > 0 and horizon > 0; got "
                               f"{init_kl_coef}, {target}, {horizon}")
        self.value = float(init_kl_coef)
        self.target = float(target)
        self.horizon = int(horizon)

    def update(self, current_kl: float, n_steps: int) -> float:
        """β ← β·(1 + clip(current_kl/target − 1, −0.2, 0.2)·n_steps/horizon); returns the new β. A NaN or
        infinite KL leaves β unchanged (one bad batch must not poison the coefficient)."""
        current_kl = float(current_kl)
        if not math.isfinite(current_kl):
            return self.value
        error = min(max(current_kl / self.target - 1.0, -ERROR_CLIP), ERROR_CLIP)
        self.value *= 1.0 + error * n_steps / self.horizon
        return self.value

    def state_dict(self) -> dict[str, Any]:
        return {"value": self.value, "target": self.target, "horizon": self.horizon}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        missing = {"value", "target", "horizon"} - set(state)
        if missing:
            raise VLForgeError(f"KL controller state lacks {sorted(missing)}")
        self.value, self.target, self.horizon = float(state["value"]), float(state["target"]), int(state["horizon"])
