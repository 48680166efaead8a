"""The end-of-fit summary printed on screen: steps, time, the last train loss and every validation metric (the same
numbers as metrics_fit.json in the run folder)."""

from __future__ import annotations

import math
import sys
import time

import lightning.pytorch as pl

from vlforge.common.progress import format_duration


class FitSummaryCallback(pl.Callback):
    """Prints `fit_summary` on global rank 0 when a fit ends."""

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start = time.monotonic()

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        log_dir = trainer.log_dir  # a collective under DDP: every rank must ask
        if trainer.is_global_zero:
            seconds = time.monotonic() - getattr(self, "_start", time.monotonic())
            print(fit_summary(trainer, seconds, log_dir), file=sys.stderr, flush=True)


def fit_summary(trainer: pl.Trainer, seconds: float, log_dir: str | None) -> str:
    metrics = {name: float(value) for name, value in trainer.callback_metrics.items()
               if value.numel() == 1 and math.isfinite(float(value))}
    lines = [f"fit done: {trainer.global_step} steps, {trainer.current_epoch} epochs in {format_duration(seconds)}"
             + (f"; run folder {log_dir}" if log_dir else "")]
    shown = {k: v for k, v in metrics.items() if k.startswith(("val", "train/loss", "train_loss"))}
    width = max((len(k) for k in shown), default=0)
    lines += [f"  {name:<{width}}  {value:.4g}" for name, value in sorted(shown.items())]
    if not any(k.startswith("val") for k in shown):
        lines.append("  (no validation metrics: the run has no validation set)")
    return "\n".join(lines)
