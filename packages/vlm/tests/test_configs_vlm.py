"""The shipped model / data configs and the experiment deltas parse and instantiate through the vlforge CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from vlforge.common.cli import VLForgeCLI
from vlforge.vlm.data import ContrastiveDataModule
from vlforge.vlm.lit_contrastive import ContrastiveLitModule
from vlforge.vlm.losses import ClipLoss, SigLipLoss
from vlforge.vlm.models import HFTextTower

EXPERIMENTS = Path(__file__).resolve().parents[3] / "experiments" / "vlm"


def _cli(store: str, *configs: str) -> VLForgeCLI:
    args = [a for c in configs for a in ("--config", c)] + ["--data.init_args.store", store]
    return VLForgeCLI("vlm", args, run=False)


@pytest.mark.parametrize("model_config, loss_type", [("vlm:model/clip_tiny.yaml", ClipLoss),
                                                     ("vlm:model/siglip_tiny.yaml", SigLipLoss)])
def test_model_and_data_configs_instantiate(shapes_store, model_config, loss_type):
    cli = _cli(shapes_store, model_config, "vlm:data/shapes_alt_text_gt_short.yaml")
    assert isinstance(cli.model, ContrastiveLitModule) and isinstance(cli.model.loss, loss_type)
    assert isinstance(cli.datamodule, ContrastiveDataModule)
    assert [c.source for c in cli.datamodule.sampler.choices] == ["alt_text", "gt"]


@pytest.mark.parametrize("experiment", sorted(p.name for p in EXPERIMENTS.glob("*.yaml")))
def test_experiment_deltas_stack_on_the_tiny_clip(shapes_store, experiment):
    cli = _cli(shapes_store, "vlm:model/clip_tiny.yaml", "vlm:data/shapes_alt_text.yaml", str(EXPERIMENTS / experiment))
    assert isinstance(cli.model, ContrastiveLitModule)
    if experiment == "semantic_guidance.yaml":
        tower = cli.model.model.text_tower
        assert isinstance(tower, HFTextTower)
        assert cli.datamodule.hparams.negatives_per_image == 1
    if experiment == "mllm_augmented.yaml":
        assert cli.datamodule.sampler.epoch_scale == pytest.approx(1 / 3)
