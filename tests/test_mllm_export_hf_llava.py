"""``vlforge-vlm export --format hf-llava``: a captioner SFT checkpoint of the llava_tiny preset (an MLLM LitModule
checkpoint) becomes a folder transformers' Auto classes load, with the checkpoint's weights and logits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

from vlforge.captioner.captioner import Captioner
from vlforge.captioner.weights import weights_from
from vlforge.common.cli import run_cli
from vlforge.common.console import console
from vlforge.common.shapes.build import build_shapes_store
from vlforge.vlm.cli import TOOLS
from vlforge.vlm.mllm.export import lit_module_from_checkpoint


def export_main(argv: list[str]) -> int:
    """`vlforge-vlm export ARGV` through the console (its exit code; errors as one line on stderr)."""
    return console("vlm", TOOLS, ["export", *argv])


def _fit(root, *extra: str):
    build_shapes_store(root / "store", num_images=60, seed=0, image_size=32, workers=1)
    assert run_cli("captioner", ["fit", "--config", "captioner:model/sft_tiny.yaml",
                                 "--config", "captioner:data/shapes_sft.yaml",
                                 "--data.init_args.store", str(root / "store"), "--data.init_args.batch_size", "4",
                                 "--trainer.max_steps", "2", "--trainer.limit_val_batches", "0",
                                 "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
                                 "--run_root", str(root / "runs"), *extra]) == 0
    return next((root / "runs").rglob("last.ckpt"))


@pytest.fixture(scope="module")
def sft_checkpoint(tmp_path_factory):
    return _fit(tmp_path_factory.mktemp("sft"))


def _inputs(processor):
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe the image."}]}]
    return processor(text=[processor.apply_chat_template(messages, add_generation_prompt=True)], images=[image],
                     return_tensors="pt")


def test_sft_checkpoint_exports_as_a_loadable_llava(sft_checkpoint, tmp_path, capsys):
    assert export_main(["--checkpoint", str(sft_checkpoint), "--format", "hf-llava", "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(tmp_path)
    model = AutoModelForImageTextToText.from_pretrained(tmp_path).eval()
    processor = AutoProcessor.from_pretrained(tmp_path)
    trained = weights_from(sft_checkpoint, Captioner("preset:llava_tiny").model).eval()
    untrained = Captioner("preset:llava_tiny").model.eval()
    trained_processor = Captioner("preset:llava_tiny").processor
    inputs = _inputs(processor)
    assert torch.equal(inputs["input_ids"], _inputs(trained_processor)["input_ids"])
    with torch.no_grad():
        logits = model(**inputs).logits
        assert torch.equal(logits, trained(**inputs).logits)
        assert not torch.allclose(logits, untrained(**inputs).logits)  # the checkpoint's weights, not the preset's


def test_foreign_class_paths_and_non_mllm_checkpoints_are_refused(sft_checkpoint, tmp_path, capsys):
    config = tmp_path / "config.yaml"
    config.write_text("model:\n  class_path: os.system\n  init_args: {command: 'true'}\n")
    args = ["--checkpoint", str(sft_checkpoint), "--format", "hf-llava", "--out", str(tmp_path / "out")]
    assert export_main([*args, "--run_config", str(config)]) == 2
    assert "class_path 'os.system' is outside the vlforge namespace" in capsys.readouterr().err
    config.write_text("model:\n  class_path: vlforge.vlm.lit_contrastive.ContrastiveLitModule\n")
    assert export_main([*args, "--run_config", str(config)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vlforge-vlm export: error: ") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_lora_checkpoint_exports_merged(tmp_path_factory, tmp_path):
    checkpoint = _fit(tmp_path_factory.mktemp("lora"), "--model.init_args.captioner.init_args.lora",
                      "{r: 4, alpha: 8}", "--model.init_args.lr", "0.05")
    assert export_main(["--checkpoint", str(checkpoint), "--format", "hf-llava", "--out", str(tmp_path)]) == 0
    model = AutoModelForImageTextToText.from_pretrained(tmp_path).eval()
    assert not any("lora" in name for name in model.state_dict())
    peft_model = lit_module_from_checkpoint(checkpoint).model.eval()
    inputs = _inputs(AutoProcessor.from_pretrained(tmp_path))
    with torch.no_grad():
        logits = model(**inputs).logits
        torch.testing.assert_close(logits, peft_model(**inputs).logits, atol=1e-5, rtol=1e-4)
        with peft_model.disable_adapter():
            assert not torch.allclose(logits, peft_model(**inputs).logits, atol=1e-4)  # the adapters are merged in
