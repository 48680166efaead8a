"""Detect the DPO collapse the ultra-detailed paper describes (appendix D): chosen and rejected rewards both fall.

Each step adds the batch-mean chosen and rejected rewards. The flag is up when, comparing the mean of the latest
``window`` steps with the mean of the ``window`` steps before, both rewards fell, and the chosen reward is below the
reference (negative): the policy is making the preferred caption less likely, not only the rejected one.
"""

from __future__ import annotations

from collections import deque


class RewardCollapseMonitor:
    """Sliding comparison of two windows of step-mean rewards; ``update`` returns the flag."""

    def __init__(self, window: int = 10) -> None:
        if window < 1:
            raise ValueError(f"window must be at least 1, got {window}")
        self.window = window
        self.chosen: deque[float] = deque(maxlen=2 * window)
        self.rejected: deque[float] = deque(maxlen=2 * window)

    def update(self, chosen_reward: float, rejected_reward: float) -> bool:
        self.chosen.append(float(chosen_reward))
        self.rejected.append(float(rejected_reward))
        return self.collapsing

    @property
    def collapsing(self) -> bool:
        if len(self.chosen) < 2 * self.window:
            return False
        w = self.window
        chosen_old, chosen_new = sum(list(self.chosen)[:w]) / w, sum(list(self.chosen)[w:]) / w
        rejected_old, rejected_new = sum(list(self.rejected)[:w]) / w, sum(list(self.rejected)[w:]) / w
        return chosen_new < chosen_old and rejected_new < rejected_old and chosen_new < 0.0
