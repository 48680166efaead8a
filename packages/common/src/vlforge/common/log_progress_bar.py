"""Lightning's progress bar for a log file (SLURM, nohup, a stage's log.txt): one status line per interval.

    fit: 120/800 steps (15.0 %), 3.2 steps/s, elapsed 37 s, ETA 3 min 32 s | epoch 0, train/loss 2.314

The console uses it instead of the rich bar when stderr is not a terminal (`vlforge.common.cli`); the interval is
`VLFORGE_PROGRESS_INTERVAL` seconds (default 30), as for every other job (`vlforge.common.progress`).
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks.progress.progress_bar import ProgressBar

from vlforge.common.progress import default_interval, status_line


class LogProgressBar(ProgressBar):
    """Writes `status_line` for training steps and evaluation batches every `interval` seconds, and once at the
    end of each stage (on global rank 0 only)."""

    def __init__(self, interval: float | None = None) -> None:
        super().__init__()
        self.interval = default_interval() if interval is None else interval
        self._enabled = True
        self._start = self._last = 0.0
        self._done = self._steps_at_start = 0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    # ------------------------------------------------------------------ training
    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._restart(trainer.global_step)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        self._maybe_write(trainer, pl_module, "fit", trainer.global_step, _total_steps(trainer), "steps")

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._write(trainer, pl_module, "fit", trainer.global_step, _total_steps(trainer), "steps")

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or not self._active(trainer):
            return
        metrics = {k: v for k, v in trainer.callback_metrics.items() if k.startswith("val")}
        if metrics:
            self.print(f"validation at step {trainer.global_step}: {_format_metrics(metrics)}")

    # ------------------------------------------------------------------ validate / test / predict
    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.state.fn != "fit":
            self._restart(0)

    def on_validation_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        if trainer.state.fn != "fit":
            self._done += 1
            self._maybe_write(trainer, pl_module, "validate", self._done, _finite(self.total_val_batches), "batches")

    def on_test_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._restart(0)

    def on_test_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        self._done += 1
        total = _finite(sum(trainer.num_test_batches))
        self._maybe_write(trainer, pl_module, "test", self._done, total, "batches")

    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._restart(0)

    def on_predict_batch_end(self, trainer: Trainer, pl_module: LightningModule, *args: Any) -> None:
        self._done += 1
        total = _finite(sum(trainer.num_predict_batches))
        self._maybe_write(trainer, pl_module, "predict", self._done, total, "batches")

    def on_predict_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._write(trainer, pl_module, "predict", self._done, _finite(sum(trainer.num_predict_batches)), "batches")

    # ------------------------------------------------------------------ helpers
    def print(self, *args: Any, **kwargs: Any) -> None:
        print(*args, file=sys.stderr, flush=True, **kwargs)

    def _active(self, trainer: Trainer) -> bool:
        return self._enabled and trainer.is_global_zero

    def _restart(self, steps: int) -> None:
        self._start = self._last = time.monotonic()
        self._done = 0
        self._steps_at_start = steps

    def _maybe_write(self, trainer: Trainer, pl_module: LightningModule, what: str, done: int, total: int | None,
                     unit: str) -> None:
        if time.monotonic() - self._last >= self.interval:
            self._write(trainer, pl_module, what, done, total, unit)

    def _write(self, trainer: Trainer, pl_module: LightningModule, what: str, done: int, total: int | None,
               unit: str) -> None:
        if not self._active(trainer):
            return
        now = time.monotonic()
        self._last = now
        # the rate and ETA count only the work of this process (a resumed fit starts at its checkpoint's step)
        started_at = self._steps_at_start if unit == "steps" else 0
        line = status_line(what, done, total, now - self._start, unit, started_at)
        metrics = {k: v for k, v in self.get_metrics(trainer, pl_module).items() if k != "v_num"}
        if what == "fit":  # the progress-bar metrics and the train losses, whether or not logged to the bar
            losses = {k: v for k, v in trainer.callback_metrics.items() if k.startswith("train") and "loss" in k}
            metrics = {"epoch": trainer.current_epoch, **losses,
                       **{k: v for k, v in metrics.items() if not k.startswith("val")}}
        self.print(line + (f" | {_format_metrics(metrics)}" if metrics else ""))


def _total_steps(trainer: Trainer) -> int | None:
    if trainer.max_steps and trainer.max_steps > 0:
        return trainer.max_steps
    return _finite(trainer.estimated_stepping_batches)


def _finite(value: float | int) -> int | None:
    return int(value) if value is not None and math.isfinite(value) else None


def _format_metrics(metrics: dict[str, Any]) -> str:
    parts = []
    for name, value in metrics.items():
        value = value.item() if hasattr(value, "item") else value
        parts.append(f"{name} {value:.4g}" if isinstance(value, float) else f"{name} {value}")
    return ", ".join(parts)
