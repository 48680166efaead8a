"""After ``fit --ckpt_path last``, log metrics at the same step numbers as an uninterrupted run.

Lightning's epoch loop adds one to its logging step counter (``_batches_that_stepped``) on every restart, assuming
the checkpoint was saved at validation end, before that counter was advanced for the batch. A checkpoint saved at the
end of a training epoch (``ModelCheckpoint`` when validation does not run at epoch end, and every end-of-run save)
already holds the advanced counter, so every row logged after the resume was one step late (``metrics.csv``,
TensorBoard). The counter saved with such a checkpoint equals its ``global_step`` (one optimizer step per counted
batch); for it the extra one is taken back at the first training batch after the resume (the loop adds it when its
first epoch after the resume starts, after every earlier hook).
"""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl


class LoggedStepCallback(pl.Callback):
    """Takes back the step Lightning adds on a restart from a checkpoint whose step counter was already advanced."""

    def __init__(self) -> None:
        self._restored: int | None = None

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get("loops", {}).get("fit_loop", {}).get("epoch_loop.state_dict", {})
        counter = saved.get("_batches_that_stepped")
        self._restored = counter if counter is not None and counter == checkpoint.get("global_step") else None

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        if self._restored is None:
            return
        loop = trainer.fit_loop.epoch_loop
        if loop._batches_that_stepped == self._restored + 1 and trainer.global_step == self._restored:
            loop._batches_that_stepped = self._restored
        self._restored = None
