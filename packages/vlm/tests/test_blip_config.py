"""The shipped BLIP model config instantiates through the vlforge CLI on the shipped ShapesWorld data
configs."""

from __future__ import annotations

import pytest

from vlforge.common.cli import VLForgeCLI
from vlforge.vlm.data import ContrastiveDataModule
from vlforge.vlm.lit_blip import BlipLitModule
from vlforge.vlm.losses import ClipLoss
from vlforge.vlm.models.blip import BlipPretrainingModel


@pytest.mark.parametrize("data_config",
                         ["vlm:data/shapes_alt_text.yaml", "vlm:data/shapes_alt_text_gt_short.yaml"])
def test_blip_tiny_config_instantiates(shapes_store, data_config):
    args = ["--config", "vlm:model/blip_tiny.yaml", "--config", data_config,
            "--data.init_args.store", shapes_store, "--model.init_args.lm_weight", "0.5"]
    cli = VLForgeCLI("vlm", args, run=False)
    module = cli.model
    assert isinstance(module, BlipLitModule) and isinstance(module.loss, ClipLoss)
    assert isinstance(module.model, BlipPretrainingModel)
    assert isinstance(cli.datamodule, ContrastiveDataModule)
    assert module.hparams.lm_weight == 0.5 and module.hparams.itm_rerank_k == 10
    # the model's image size matches the data's
    assert module.model.vision_model.config.image_size == cli.datamodule.hparams.image_size == 32
