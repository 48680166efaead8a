"""Save and restore every random number generator (python, numpy, torch CPU and CUDA) with the checkpoint, per rank."""

from __future__ import annotations

import random
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_warn


def capture_rng_state() -> dict[str, torch.Tensor]:
    """This process's RNG states as tensors (so a checkpoint loads with torch.load(weights_only=True))."""
    version, mt_state, gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": torch.tensor([version, *mt_state], dtype=torch.int64),
        "python_gauss": torch.tensor([float("nan") if gauss is None else gauss], dtype=torch.float64),
        "numpy": torch.tensor([*np_keys.tolist(), np_pos, np_has_gauss], dtype=torch.int64),
        "numpy_gauss": torch.tensor([np_gauss], dtype=torch.float64),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng_state(state: dict[str, torch.Tensor]) -> None:
    """Inverse of `capture_rng_state`."""
    torch.set_rng_state(state["torch"].cpu())
    python = state["python"].tolist()
    gauss = state["python_gauss"].item()
    random.setstate((python[0], tuple(python[1:]), None if gauss != gauss else gauss))
    numpy = state["numpy"].tolist()
    np.random.set_state(
        ("MT19937", np.array(numpy[:-2], dtype=np.uint32), numpy[-2], numpy[-1], state["numpy_gauss"].item())
    )
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"].cpu())


class RNGStateCallback(pl.Callback):
    """Stores each rank's RNG states in the checkpoint and restores them when training resumes.

    States are restored at `on_train_start` (after the sanity check, which draws random numbers of its own), so the
    training steps after a resume see exactly the random numbers an uninterrupted run would.
    """

    def __init__(self) -> None:
        self._pending: dict[str, torch.Tensor] | None = None
        self._trainer: pl.Trainer | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._trainer = trainer

    def state_dict(self) -> dict[str, Any]:
        state = capture_rng_state()
        trainer = self._trainer
        if trainer is not None and trainer.world_size > 1:
            # Every rank calls state_dict while the checkpoint is assembled; rank 0 writes all ranks' states.
            return {
                key: trainer.strategy.all_gather(value.to(trainer.strategy.root_device)).cpu()
                for key, value in state.items()
            }
        return {key: value.unsqueeze(0) for key, value in state.items()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._pending is None:
            return
        saved_ranks = next(iter(self._pending.values())).shape[0]
        if saved_ranks == trainer.world_size:
            restore_rng_state({key: value[trainer.global_rank] for key, value in self._pending.items()})
        else:
            rank_zero_warn(
                f"RNG states were saved by {saved_ranks} processes and this run has {trainer.world_size}:"
                " random numbers after the resume will differ from an uninterrupted run"
            )
        self._pending = None
