"""Saving the merged config into the run directory without losing the first run's config on a resume.

``fit --ckpt_path last`` continues in the same ``version_<n>`` folder; Lightning's own callback would overwrite
``config.yaml`` there (or refuse to start). Here the first config stays as ``config.yaml`` and each resume writes
its own merged config beside it as ``config.resume<k>.yaml`` (k = 1, 2, ...).
"""

from __future__ import annotations

import os

from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.cli import SaveConfigCallback

CONFIG_NAME = "config.yaml"


def next_config_name(log_dir: str) -> str:
    """``config.yaml`` in a new run directory, else the first free ``config.resume<k>.yaml``."""
    if not os.path.isfile(os.path.join(log_dir, CONFIG_NAME)):
        return CONFIG_NAME
    k = 1
    while os.path.isfile(os.path.join(log_dir, f"config.resume{k}.yaml")):
        k += 1
    return f"config.resume{k}.yaml"


class KeepFirstConfig(SaveConfigCallback):
    """Lightning's SaveConfigCallback, naming the file with :func:`next_config_name` (chosen on rank 0)."""

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if not self.already_saved and self.save_to_log_dir:
            log_dir = trainer.log_dir
            name = next_config_name(log_dir) if trainer.is_global_zero and log_dir else CONFIG_NAME
            self.config_filename = trainer.strategy.broadcast(name)
        super().setup(trainer, pl_module, stage)
