"""`vlforge-captioner export --format hf`: a captioner trained by `vlforge-captioner fit` becomes a transformers
folder that AutoModelForImageTextToText + AutoProcessor load, with the trained weights (same logits) and the chat
template kept."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor

from vlforge.captioner.cli import TOOLS
from vlforge.captioner.hf_export import captioner_from_checkpoint
from vlforge.common.checkpoint import read_checkpoint_state_dict
from vlforge.common.cli import run_cli
from vlforge.common.console import console
from vlforge.common.presets import build_preset
from vlforge.common.shapes.build import build_shapes_store


@pytest.fixture(scope="module")
def sft_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("captioner_export")
    store = str(root / "store")
    build_shapes_store(store, 40, seed=2, workers=1, image_size=32, split_fractions={"seed": 0.8, "val": 0.2})
    assert run_cli("captioner", ["fit", "--config", "captioner:model/sft_tiny.yaml",
                                 "--config", "captioner:data/shapes_sft.yaml", "--data.init_args.store", store,
                                 "--data.init_args.batch_size", "4", "--data.init_args.val_split", "null",
                                 "--model.init_args.lr", "0.05", "--trainer.max_steps", "2",
                                 "--trainer.limit_val_batches", "0", "--trainer.enable_progress_bar", "false",
                                 "--trainer.enable_model_summary", "false", "--run_root", str(root / "runs")]) == 0
    checkpoint = next((root / "runs").rglob("last.ckpt"))
    return checkpoint


def test_exported_folder_loads_with_auto_classes_and_keeps_weights_and_chat_template(sft_run, tmp_path, capsys,
                                                                                     images):
    out = tmp_path / "hf"
    assert console("captioner", TOOLS, ["export", "--checkpoint", str(sft_run), "--format", "hf",
                                        "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(out)
    model = AutoModelForImageTextToText.from_pretrained(out).eval()
    processor = AutoProcessor.from_pretrained(out)
    trained = captioner_from_checkpoint(sft_run)
    original = build_preset("llava_tiny")[1]
    assert processor.chat_template and processor.chat_template == trained.processor.chat_template
    assert processor.chat_template == original.chat_template
    saved = {k.removeprefix("model."): v for k, v in read_checkpoint_state_dict(sft_run).items()
             if k.startswith("model.")}
    exported = model.state_dict()
    assert saved and set(saved) == set(exported)
    for name, value in saved.items():  # the checkpoint's trained weights, bit for bit
        torch.testing.assert_close(exported[name], value, rtol=0, atol=0, msg=name)
    conversation = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe it."}]}]
    prompt = processor.apply_chat_template(conversation, add_generation_prompt=True)
    inputs = processor(text=[prompt], images=[images[0]], return_tensors="pt")
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs).logits, trained.model.eval()(**inputs).logits)


def test_export_mistakes_are_one_line(tmp_path, capsys):
    assert console("captioner", TOOLS, ["export", "--checkpoint", str(tmp_path / "none.ckpt"), "--format", "hf",
                                        "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "none.ckpt" in err and len(err.strip().splitlines()) == 1


def test_export_never_writes_into_the_checkpoint_folder(sft_run, capsys):
    before = sorted(p.name for p in sft_run.parent.iterdir())
    assert console("captioner", TOOLS, ["export", "--checkpoint", str(sft_run), "--format", "hf",
                                        "--out", str(sft_run.parent)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "holds the input" in err[-1] and "Traceback" not in err
    assert sorted(p.name for p in sft_run.parent.iterdir()) == before


def test_a_lora_captioner_exports_with_its_adapters_merged(tmp_path, images):
    from vlforge.captioner.captioner import Captioner
    from vlforge.captioner.hf_export import export_hf_captioner
    from vlforge.captioner.model_setup import LoraSettings

    torch.manual_seed(0)
    captioner = Captioner(source="preset:llava_tiny", lora=LoraSettings(r=2, alpha=4))
    with torch.no_grad():  # trained adapters: lora_B starts at zero, which would merge to nothing
        for name, parameter in captioner.model.named_parameters():
            if "lora_B" in name:
                parameter.add_(0.5 * torch.randn_like(parameter))
    inputs = captioner.processor(text=["<image> a"], images=[images[0]], return_tensors="pt")
    with torch.no_grad():
        with_adapters = captioner.model.eval()(**inputs).logits
        with captioner.model.disable_adapter():
            without_adapters = captioner.model(**inputs).logits
    assert not torch.allclose(with_adapters, without_adapters, atol=1e-3)  # the adapters matter
    out = export_hf_captioner(captioner, tmp_path / "lora_hf")
    model = AutoModelForImageTextToText.from_pretrained(out).eval()
    assert not any("lora" in name for name in model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs).logits, with_adapters, atol=1e-5, rtol=1e-4)
