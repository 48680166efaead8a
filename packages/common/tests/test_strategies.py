"""DeepSpeed config generation and strategy construction (DeepSpeed runs on CUDA only: no fit here)."""

from pathlib import Path

import lightning.pytorch as pl
import pytest
import yaml

from vlforge.common.cli import resolve_config
from vlforge.common.errors import VLForgeError
from vlforge.common.strategies import ZeroStrategy, deepspeed_config


def test_zero2_config_fields() -> None:
    config = deepspeed_config(2, reduce_bucket_size=5e7, allgather_bucket_size=3e7, bf16=True)
    zero = config["zero_optimization"]
    assert zero["stage"] == 2 and zero["reduce_bucket_size"] == 50_000_000
    assert zero["allgather_bucket_size"] == 30_000_000 and "offload_param" not in zero
    assert config["bf16"] == {"enabled": True}


def test_zero3_offload_config_fields() -> None:
    zero = deepspeed_config(3, offload_optimizer=True, offload_parameters=True, pin_memory=False)[
        "zero_optimization"
    ]
    assert zero["offload_optimizer"] == {"device": "cpu", "pin_memory": False}
    assert zero["offload_param"] == {"device": "cpu", "pin_memory": False}
    assert "allgather_bucket_size" not in zero and zero["stage3_prefetch_bucket_size"] == 50_000_000


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"stage": 4}, "ZeRO stage must be 1, 2 or 3"),
        ({"stage": 2, "offload_parameters": True}, "needs ZeRO stage 3"),
    ],
)
def test_invalid_zero_settings_are_one_line_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(VLForgeError, match=message):
        deepspeed_config(**kwargs)


@pytest.mark.parametrize("preset", ["deepspeed_zero2", "deepspeed_zero3", "deepspeed_zero3_offload"])
def test_presets_build_lightning_deepspeed_strategy(preset: str) -> None:
    trainer_config = yaml.safe_load(Path(resolve_config(f"common:trainer/{preset}.yaml")).read_text())[
        "trainer"
    ]
    init_args = trainer_config["strategy"]["init_args"]
    strategy = ZeroStrategy(**init_args)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        strategy=strategy,
        precision=trainer_config["precision"],
        logger=False,
        enable_checkpointing=False,
    )
    assert isinstance(trainer.strategy, pl.strategies.DeepSpeedStrategy)
    assert trainer.strategy.config["zero_optimization"]["stage"] == init_args["stage"]
    assert trainer.strategy.config["bf16"]["enabled"] is True
    assert ("offload_param" in trainer.strategy.config["zero_optimization"]) == preset.endswith("offload")


def test_bf16_must_agree_with_trainer_precision() -> None:
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        strategy=ZeroStrategy(stage=2, bf16=True),
        precision="32-true",
        logger=False,
        enable_checkpointing=False,
    )
    with pytest.raises(VLForgeError, match="disagrees with trainer.precision=32-true"):
        trainer.strategy.setup_environment()
