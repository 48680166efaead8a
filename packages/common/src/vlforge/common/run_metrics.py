"""Writes the metrics a run logged into its run directory as JSON (metrics_<stage>.json), on rank 0."""

from __future__ import annotations

import json
import math
from pathlib import Path

import lightning.pytorch as pl

from vlforge.common.atomic_file import write_atomically


class MetricsJSONCallback(pl.Callback):
    """After fit / validate / test, dumps `trainer.callback_metrics` (plus epoch and step) to the run directory."""

    def _dump(self, trainer: pl.Trainer, stage: str) -> None:
        log_dir = trainer.log_dir  # a collective under DDP: every rank must ask
        if log_dir is None or trainer.global_rank != 0:
            return
        metrics = {
            name: float(value)
            for name, value in trainer.callback_metrics.items()
            if value.numel() == 1 and math.isfinite(float(value))
        }
        record = {
            "stage": stage,
            "epoch": trainer.current_epoch,
            "global_step": trainer.global_step,
            "metrics": metrics,
        }
        path = Path(log_dir) / f"metrics_{stage}.json"
        write_atomically(path, json.dumps(record, indent=2, sort_keys=True) + "\n")  # never torn by a kill

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._dump(trainer, "fit")

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking and trainer.state.fn == "validate":
            self._dump(trainer, "validate")

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._dump(trainer, "test")
