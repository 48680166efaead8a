"""Every shipped captioner config and experiment delta parses and instantiates through the vlforge CLI; the tiny
recipes run `fit` from YAML."""

from pathlib import Path

import pytest

from vlforge.captioner.datamodules import CaptionerPreferenceDataModule, CaptionerSFTDataModule
from vlforge.captioner.lit_preference import CaptionerPreferenceLitModule
from vlforge.captioner.lit_sft import CaptionerSFTLitModule
from vlforge.common.cli import VLForgeCLI, package_config_dir
from vlforge.common.shapes.build import build_shapes_store

EXPERIMENTS = Path(__file__).resolve().parents[3] / "experiments" / "captioner"
TINY = "--model.init_args.captioner.init_args.source=preset:llava_tiny"
MODELS = sorted(p.name for p in (package_config_dir("captioner") / "model").glob("*.yaml"))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("captioner_cfg") / "store"
    build_shapes_store(path, 80, seed=5, workers=1,
                       split_fractions={"seed": 0.4, "pref": 0.3, "val": 0.2, "test": 0.1})
    return str(path)


def _cli(store, *configs, extra=()):
    args = [a for c in configs for a in ("--config", c)] + ["--data.init_args.store", store, TINY, *extra]
    return VLForgeCLI("captioner", args, run=False)


def _data_for(model_config):
    return "captioner:data/shapes_preference.yaml" if "preference" in model_config else "captioner:data/shapes_sft.yaml"


@pytest.mark.parametrize("model_config", MODELS)
def test_model_and_data_configs_instantiate(store, model_config):
    """The paper recipes name hub models; here their source is swapped for the tiny preset (no hub)."""
    cli = _cli(store, f"captioner:model/{model_config}", _data_for(model_config))
    if "preference" in model_config:
        assert isinstance(cli.model, CaptionerPreferenceLitModule)
        assert isinstance(cli.datamodule, CaptionerPreferenceDataModule)
        assert tuple(cli.model.hparams.weights) == (0.8, 1.0, 0.2) and cli.model.hparams.beta == 0.1
    else:
        assert isinstance(cli.model, CaptionerSFTLitModule)
        assert isinstance(cli.datamodule, CaptionerSFTDataModule)
    if "paper" in model_config:
        assert cli.model.hparams.lr in (1e-5, 5e-6)
        assert cli.trainer.max_epochs == 1


@pytest.mark.parametrize("experiment", sorted(p.name for p in EXPERIMENTS.glob("*.yaml")))
def test_experiment_deltas_stack_on_the_tiny_recipes(store, experiment):
    model = "preference_tiny.yaml" if experiment == "aggressive_dpo.yaml" else "sft_tiny.yaml"
    cli = _cli(store, f"captioner:model/{model}", _data_for(model), str(EXPERIMENTS / experiment))
    if experiment == "aggressive_dpo.yaml":
        assert tuple(cli.model.hparams.weights) == (1.0, 0.0, 0.0) and cli.model.hparams.lr == 0.005
    if experiment == "lora.yaml":
        assert any("lora_A" in n for n, p in cli.model.model.named_parameters() if p.requires_grad)
    if experiment == "formats_mix.yaml":
        assert set(cli.datamodule.hparams.targets) == {"short", "descriptive", "dense", "alt_fusion"}


@pytest.mark.parametrize("model_config", ["sft_tiny.yaml", "preference_tiny.yaml"])
def test_tiny_recipes_fit_from_yaml(store, tmp_path, model_config):
    args = ["fit", "--config", f"captioner:model/{model_config}", "--config", _data_for(model_config),
            "--data.init_args.store", store, "--data.init_args.batch_size", "4", "--trainer.max_steps", "2",
            "--trainer.limit_val_batches", "1", "--trainer.enable_progress_bar", "false",
            "--run_root", str(tmp_path)]
    cli = VLForgeCLI("captioner", args)
    assert cli.trainer.global_step == 2
    assert (tmp_path / "captioner" / "version_0" / "config.yaml").is_file()
