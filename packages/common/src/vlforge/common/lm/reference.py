"""The frozen reference policy π_ref of preference and RL training (DPO, BCO, PRO, PPO's KL term).

Two ways to hold it, named by ``REFERENCE_MODES``:

- ``"copy"``: :func:`frozen_copy` of the starting policy — two models in memory; as a submodule of the LitModule
  it is saved with checkpoints (``reference_model.*``; :func:`~vlforge.common.lm.loading.weights_from` skips it);
  :func:`keep_eval` keeps it in eval mode when Lightning switches the module to training mode;
- ``"precomputed"``: :class:`ReferenceLogprobs`, the starting policy's log-probs of every training example computed
  once at the start of fit and keyed by the example's ``key``, so that only one model is in memory; the table goes
  into checkpoints (``checkpoint[CHECKPOINT_KEY]``), so a resumed run keeps the true π_ref.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from vlforge.common.errors import VLForgeError

REFERENCE_MODES = ("copy", "precomputed")
CHECKPOINT_KEY = "reference_logps"


def check_mode(mode: str) -> str:
    if mode not in REFERENCE_MODES:
        raise VLForgeError(f"reference {mode!r} is not one of {', '.join(REFERENCE_MODES)}")
    return mode


def frozen_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` in eval mode with no parameter requiring gradients."""
    return copy.deepcopy(model).eval().requires_grad_(False)


def keep_eval(reference: nn.Module | None) -> None:
    """Put the reference copy back in eval mode (call from the LitModule's ``train()``)."""
    if reference is not None:
        reference.eval()


class ReferenceLogprobs:
    """Precomputed reference log-probs: example key -> one float per response (k per example)."""

    def __init__(self) -> None:
        self.table: dict[str, tuple[float, ...]] = {}

    def __len__(self) -> int:
        return len(self.table)

    def add(self, keys: Sequence[str], logps: torch.Tensor) -> None:
        """Store ``logps`` [B, k] (row i: the k responses of example ``keys[i]``)."""
        if any(not k for k in keys):
            raise VLForgeError("reference='precomputed' needs a unique 'key' on every example")
        for key, row in zip(keys, logps.detach().float().cpu().tolist(), strict=True):
            self.table[key] = tuple(float(v) for v in row)

    def lookup(self, keys: Sequence[str], device: torch.device | str = "cpu") -> torch.Tensor:
        """The stored log-probs [B, k] of ``keys``; a key never precomputed is an error naming it."""
        missing = [k for k in keys if k not in self.table]
        if missing:
            raise VLForgeError(f"no precomputed reference log-probs for example {missing[0]!r}; "
                               "the reference must be precomputed over every training example")
        return torch.tensor([self.table[k] for k in keys], device=device)

    def save_to(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CHECKPOINT_KEY] = {k: list(v) for k, v in self.table.items()}

    def load_from(self, checkpoint: dict[str, Any]) -> None:
        self.table = {k: tuple(float(x) for x in v) for k, v in checkpoint.get(CHECKPOINT_KEY, {}).items()}
