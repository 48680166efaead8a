"""Hugging Face vision export: an open_clip ViT trained by vlforge-vlm becomes a CLIPVisionModelWithProjection
with the same outputs, and the captioner's LLaVA takes it as its vision tower (``model.vision_from``)."""

from __future__ import annotations

import pytest
import torch
from open_clip.transform import image_transform
from transformers import CLIPVisionModelWithProjection

from vlforge.common.console import console
from vlforge.common.errors import VLForgeError
from vlforge.common.presets import build_preset, load_preset_config
from vlforge.common.presets.llava import build_llava
from vlforge.common.presets.tokenizer import shapes_tokenizer
from vlforge.common.store import CaptionDataset
from vlforge.vlm.cli import TOOLS
from vlforge.vlm.hf_vision_export import export_hf_vision, hf_vision_state_dict, to_hf_vision
from vlforge.vlm.loading import model_from_checkpoint
from vlforge.vlm.models import ContrastiveModel, OpenClipImageTower, OpenClipTextTower


def _trained_like(config: dict) -> ContrastiveModel:
    torch.manual_seed(0)
    model = ContrastiveModel(OpenClipImageTower(config), OpenClipTextTower(config))
    with torch.no_grad():  # move every weight away from its initialisation, as training would
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return model.eval()


def _open_clip_tokens(visual: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """open_clip's ViT, step by step: the last block's output for every token (before ln_post)."""
    patches = visual.conv1(images).flatten(2).transpose(1, 2)
    cls = visual.class_embedding.expand(images.shape[0], 1, -1)
    return visual.transformer(visual.ln_pre(torch.cat([cls, patches], dim=1) + visual.positional_embedding))


@pytest.mark.parametrize("quick_gelu", [False, True])
def test_converted_tower_gives_open_clips_outputs(tiny_open_clip, quick_gelu):
    config = tiny_open_clip | {"quick_gelu": quick_gelu}
    model = _trained_like(config)
    hf = to_hf_vision(model, config)
    assert hf.config.hidden_act == ("quick_gelu" if quick_gelu else "gelu")
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected = model.image_tower.visual(images)
        out = hf(pixel_values=images, output_hidden_states=True)
        tokens = _open_clip_tokens(model.image_tower.visual, images)
    torch.testing.assert_close(out.image_embeds, expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out.hidden_states[-1], tokens, atol=1e-5, rtol=1e-4)


def test_other_activation_would_not_match(tiny_open_clip):
    """The parity above can fail: declaring the wrong activation changes the outputs."""
    model = _trained_like(tiny_open_clip)
    wrong = to_hf_vision(model, tiny_open_clip | {"quick_gelu": True})
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(wrong(pixel_values=images).image_embeds, model.image_tower.visual(images),
                                  atol=1e-4)


def test_towers_without_a_counterpart_are_refused(tiny_open_clip):
    for change, part in (({"pool_type": "avg"}, "pools with 'avg'"), ({"ls_init_value": 0.1}, "ls_1.gamma"),
                         ({"no_ln_pre": True}, "ln_pre.weight")):
        config = tiny_open_clip | {"vision_cfg": tiny_open_clip["vision_cfg"] | change}
        with pytest.raises(VLForgeError, match=part.replace(".", r"\.")):
            hf_vision_state_dict(OpenClipImageTower(config).visual)


def test_export_cli_into_a_llava_vision_tower(clip_checkpoint, shapes_store, tmp_path, capsys):
    out = tmp_path / "clip_vision"
    assert console("vlm", TOOLS, ["export", "--checkpoint", str(clip_checkpoint), "--format", "hf-vision",
                                  "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(out)  # (deepspeed may log a line first)
    assert CLIPVisionModelWithProjection.from_pretrained(out).config.image_size == 32
    model, _ = model_from_checkpoint(clip_checkpoint)
    visual = model.eval().image_tower.visual
    llava, processor = build_llava(shapes_tokenizer(num_images=50, vocab_size=600), vision_from=str(out),
                                   text={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                                         "num_attention_heads": 2, "num_key_value_heads": 1})
    image, _ = CaptionDataset(shapes_store, split="test")[0]
    pixels = processor.image_processor(images=[image], return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(pixels, image_transform(32, is_train=False)(image).unsqueeze(0), atol=1e-5, rtol=0)
    assert processor(text=["<image> a"], images=[image], return_tensors="pt")["input_ids"].shape[1] == 16 + 2
    with torch.no_grad():
        got = llava.eval().model.vision_tower(pixels, output_hidden_states=True).hidden_states[-1]
        torch.testing.assert_close(got, _open_clip_tokens(visual, pixels), atol=1e-5, rtol=1e-4)


def test_export_writes_a_llava_preset_on_the_tower(clip_checkpoint, tmp_path, capsys):
    out = tmp_path / "clip_vision"
    assert console("vlm", TOOLS, ["export", "--checkpoint", str(clip_checkpoint), "--format", "hf-vision",
                                  "--out", str(out), "--llava-preset", "llava_tiny"]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(out / "preset.yaml")
    preset = load_preset_config(out / "preset.yaml")
    assert preset["model"]["vision_from"] == str(out.resolve()) and "vision" not in preset["model"]
    llava, _ = build_preset(out / "preset.yaml")
    model, _ = model_from_checkpoint(clip_checkpoint)
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        got = llava.eval().model.vision_tower(pixels, output_hidden_states=True).hidden_states[-1]
        torch.testing.assert_close(got, _open_clip_tokens(model.eval().image_tower.visual, pixels), atol=1e-5,
                                   rtol=1e-4)
    assert console("vlm", TOOLS, ["export", "--checkpoint", str(clip_checkpoint), "--format", "open_clip",
                                  "--out", str(tmp_path / "oc"), "--llava-preset", "llava_tiny"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # (after the preset build's loading progress)
    assert err == ("vlforge-vlm export: error: --llava-preset starts a llava preset from an hf-vision export, not "
                   "from open_clip")


def test_export_and_vision_from_mistakes(clip_checkpoint, tmp_path, tiny_open_clip, capsys):
    assert console("vlm", TOOLS, ["export", "--checkpoint", str(clip_checkpoint), "--format", "onnx",
                                  "--out", str(tmp_path)]) == 2
    assert "invalid choice: 'onnx'" in capsys.readouterr().err
    folder = export_hf_vision(_trained_like(tiny_open_clip), tmp_path / "v", tiny_open_clip)
    tokenizer = shapes_tokenizer(num_images=50, vocab_size=600)
    with pytest.raises(VLForgeError, match="model.vision and model.vision_from exclude each other"):
        build_llava(tokenizer, vision_from=str(folder), vision={"hidden_size": 64})
    with pytest.raises(VLForgeError, match="model.vision_from '.*missing'.*not a CLIP vision model"):
        build_llava(tokenizer, vision_from=str(tmp_path / "missing"))


def test_export_replaces_an_earlier_export_and_never_writes_into_its_run(clip_checkpoint, tmp_path, capsys):
    """`vlforge-vlm export` writes its folder atomically (a temporary folder renamed into place): a second export
    replaces the first, and an --out that holds the checkpoint (its run folder) is refused in one line."""
    out = tmp_path / "open_clip"
    for _ in range(2):
        assert console("vlm", TOOLS, ["export", "--checkpoint", str(clip_checkpoint), "--format", "open_clip",
                                      "--out", str(out)]) == 0
    assert [p.name for p in tmp_path.iterdir()] == ["open_clip"]  # no temporary folder left beside it
    assert sorted(p.name for p in out.iterdir()) == ["open_clip_config.json", "open_clip_model.safetensors"]
    run = clip_checkpoint.parent.parent
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    capsys.readouterr()
    for target in (run, clip_checkpoint.parent):
        assert console("vlm", TOOLS, ["export", "--checkpoint", str(clip_checkpoint), "--format", "hf-vision",
                                      "--out", str(target)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert "Traceback" not in err and "holds the input" in err[-1]
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before
