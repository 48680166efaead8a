"""Pretrained parts under ZeRO-3 (#13 item 4): LLaVA, DeepSpeed #5443 and Lightning #19259 lose weights when a model
is built inside ``deepspeed.zero.Init`` (Lightning's ``configure_model`` under stage 3, or transformers'
``from_pretrained`` while an ``HfDeepSpeedConfig`` is alive) and pretrained weights are then loaded into the
partitioned, empty parameters. vlforge's stage model loads its tower and LM when the CLI instantiates the LitModule,
outside any such context, and the strategy partitions the full tensors when the engine starts. On CPU: the stacked
real ZeRO-3 trainer config instantiates with the stage model holding the saved folders' weights, and transformers'
ZeRO-3 loading switch is off. The partitioning itself needs CUDA (the GPU check's part)."""

import json

import torch
from transformers import CLIPVisionModel
from transformers.integrations import is_deepspeed_zero3_enabled

from vlforge.common.presets import build_preset
from vlforge.common.runs import check_config
from vlforge.common.strategies import ZeroStrategy
from vlforge.vlm.mllm.lit_stage import LlavaStageLitModule


def test_pretrained_tower_and_lm_keep_their_weights_when_built_for_zero3(towers, tmp_path):
    lm_folder = tmp_path / "lm"
    language_model, tokenizer = build_preset("llama_tiny")
    language_model.save_pretrained(lm_folder)
    tokenizer.save_pretrained(lm_folder)
    parts = tmp_path / "parts.yaml"  # the pretrained folders in place of the tiny config's random-init parts
    parts.write_text(json.dumps({"model": {"init_args": {"model": {"init_args": {
        "vision": towers["clip"], "vision_config": None, "lm": str(lm_folder), "init_from": None}}}}}))
    cli = check_config("vlm", [
        "--config", "vlm:mllm/pretrain_tiny.yaml", "--config", "common:trainer/deepspeed_zero3.yaml",
        "--config", str(parts), "--trainer.accelerator", "cpu", "--trainer.devices", "1",
        "--run_root", str(tmp_path / "runs")], instantiate=True)
    assert isinstance(cli.trainer.strategy, ZeroStrategy) and cli.trainer.strategy.config["zero_optimization"][
        "stage"] == 3
    assert isinstance(cli.model, LlavaStageLitModule) and not is_deepspeed_zero3_enabled()
    model = cli.model.model
    tower = CLIPVisionModel.from_pretrained(towers["clip"])
    built = model.model.vision_tower.state_dict()
    assert built.keys() == tower.state_dict().keys()
    for name, saved in tower.state_dict().items():
        assert built[name].shape == saved.shape and torch.equal(built[name], saved), name  # not empty, not re-drawn
    saved_lm = language_model.state_dict()
    built_lm = {f"model.{k}": v for k, v in model.model.language_model.state_dict().items()}
    built_lm["lm_head.weight"] = model.lm_head.weight
    for name, saved in saved_lm.items():
        rows = saved.shape[0]
        assert torch.equal(built_lm[name][:rows], saved), name  # the image / pad tokens' rows are appended
