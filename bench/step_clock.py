"""StepClock: a Lightning callback for benchmarks, writing every training step's end time and loss to ``path``
(JSON) when fit ends. Added to a CLI run with ``--trainer.callbacks+=step_clock.StepClock
--trainer.callbacks.path=FILE`` and bench/ on PYTHONPATH (bench/clip_peer_fit.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import lightning as L


class StepClock(L.Callback):
    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.ends: list[float] = []
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.ends.append(time.perf_counter())
        self.losses.append(float(outputs["loss"]))

    def on_fit_end(self, trainer, module) -> None:
        self.path.write_text(json.dumps({"ends": self.ends, "losses": self.losses}))
