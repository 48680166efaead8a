"""open_clip interop: a ContrastiveModel exported in open_clip's format loads with
open_clip.create_model_and_transforms and gives the same features; a ContrastiveModel initialises from
open_clip
checkpoints (local folder, registered name + local weights file, YAML)."""

from __future__ import annotations

import json

import open_clip
import pytest
import torch

from vlforge.common.cli import VLForgeCLI
from vlforge.common.errors import VLForgeError
from vlforge.common.presets.open_clip_models import register_tiny_open_clip_configs
from vlforge.vlm.models import ContrastiveModel, HFTextTower, OpenClipImageTower, OpenClipTextTower
from vlforge.vlm.open_clip_export import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    OpenClipContrastiveModel,
    export_open_clip,
    open_clip_model_config,
)

TEXTS = ["a large red circle above a small blue square.", "two shapes on plain grey", "stock photo img 4821"]


def _trained_like(config: dict, bias: float | None = None) -> ContrastiveModel:
    torch.manual_seed(0)
    model = ContrastiveModel(OpenClipImageTower(config), OpenClipTextTower(config), init_logit_scale=3.1,
                             init_logit_bias=bias)
    with torch.no_grad():  # move every weight away from its initialisation, as training would
        for parameter in model.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
    return model.eval()


def _features(model: ContrastiveModel, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        return model.encode_image(images), model.encode_text(model.tokenize(TEXTS))


@pytest.mark.parametrize("bias", [None, -10.0])
def test_export_loads_in_open_clip_with_the_same_features(tmp_path, tiny_open_clip, bias):
    model = _trained_like(tiny_open_clip, bias)
    config = open_clip_model_config(tiny_open_clip, tiny_open_clip, bias)
    out = export_open_clip(model, tmp_path / "export", config)
    assert sorted(p.name for p in out.iterdir()) == sorted([CONFIG_FILE, WEIGHTS_FILE])
    loaded, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{out}")
    loaded.eval()
    tokenizer = open_clip.get_tokenizer(f"local-dir:{out}")
    images = torch.randn(4, 3, 32, 32)
    ours_image, ours_text = _features(model, images)
    with torch.no_grad():
        theirs_image = loaded.encode_image(images, normalize=True)
        theirs_text = loaded.encode_text(tokenizer(TEXTS), normalize=True)
    torch.testing.assert_close(theirs_image, ours_image, rtol=0, atol=1e-6)
    torch.testing.assert_close(theirs_text, ours_text, rtol=0, atol=1e-6)
    assert loaded.logit_scale.item() == pytest.approx(model.logit_scale.item())
    if bias is None:
        assert loaded.logit_bias is None
    else:
        assert loaded.logit_bias.item() == pytest.approx(model.logit_bias.item())
    assert preprocess.transforms[1].size == (32, 32)


def test_contrastive_model_from_an_exported_folder_round_trips(tmp_path, tiny_open_clip):
    model = _trained_like(tiny_open_clip)
    out = export_open_clip(model, tmp_path / "export", open_clip_model_config(tiny_open_clip, tiny_open_clip))
    reloaded = OpenClipContrastiveModel(f"local-dir:{out}").eval()
    images = torch.randn(2, 3, 32, 32)
    for ours, theirs in zip(_features(model, images), _features(reloaded, images), strict=True):
        torch.testing.assert_close(theirs, ours, rtol=0, atol=0)
    assert set(reloaded.state_dict()) == set(model.state_dict())


def test_from_a_registered_name_and_a_local_weights_file(tmp_path):
    register_tiny_open_clip_configs()
    torch.manual_seed(1)
    source = open_clip.create_model("vlforge-tiny-vit-32").eval()
    weights = tmp_path / "tiny.pt"
    torch.save(source.state_dict(), weights)  # plain tensors: loads with torch.load(weights_only=True)
    model = OpenClipContrastiveModel("vlforge-tiny-vit-32", pretrained=str(weights)).eval()
    images = torch.randn(2, 3, 32, 32)
    tokens = open_clip.get_tokenizer("vlforge-tiny-vit-32")(TEXTS)
    with torch.no_grad():
        torch.testing.assert_close(model.encode_image(images), source.encode_image(images, normalize=True))
        torch.testing.assert_close(model.encode_text({"input_ids": tokens}),
                                   source.encode_text(tokens, normalize=True))


def test_pretrained_from_yaml_through_the_cli(tmp_path, tiny_open_clip, shapes_store):
    model = _trained_like(tiny_open_clip)
    out = export_open_clip(model, tmp_path / "export", open_clip_model_config(tiny_open_clip, tiny_open_clip))
    config = tmp_path / "model.yaml"
    config.write_text(f"""
model:
  class_path: vlforge.vlm.lit_contrastive.ContrastiveLitModule
  init_args:
    model:
      class_path: vlforge.vlm.open_clip_export.OpenClipContrastiveModel
      init_args:
        model_name: local-dir:{out}
""")
    cli = VLForgeCLI("vlm", ["--config", str(config), "--config", "vlm:data/shapes_alt_text.yaml",
                             "--data.init_args.store", shapes_store], run=False)
    loaded = cli.model.model
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0)


def test_bad_exports_and_sources_are_one_line_errors(tmp_path, tiny_open_clip, minilm_dir):
    hf_text = ContrastiveModel(OpenClipImageTower(tiny_open_clip), HFTextTower(minilm_dir, embed_dim=32))
    with pytest.raises(VLForgeError, match="needs open_clip towers.*HFTextTower"):
        export_open_clip(hf_text, tmp_path / "x", open_clip_model_config(tiny_open_clip, tiny_open_clip))
    with pytest.raises(VLForgeError, match="both be set or both unset"):
        export_open_clip(_trained_like(tiny_open_clip), tmp_path / "x",
                         open_clip_model_config(tiny_open_clip, tiny_open_clip, init_logit_bias=-10.0))
    wider = json.loads(json.dumps(tiny_open_clip))
    wider["embed_dim"] = 48
    with pytest.raises(VLForgeError, match="embed_dim 32 != text tower embed_dim 48"):
        open_clip_model_config(tiny_open_clip, wider)
    with pytest.raises(VLForgeError, match="no open_clip_config.json"):
        OpenClipContrastiveModel(f"local-dir:{tmp_path}")
    with pytest.raises(VLForgeError, match="no-such-model.*not found"):
        OpenClipContrastiveModel("no-such-model")
