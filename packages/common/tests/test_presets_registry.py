"""Preset YAML validation: names, paths, and one-line errors naming the key and the file."""

import pytest
import torch

from vlforge.common.errors import VLForgeError
from vlforge.common.presets import build_preset, load_preset_config, preset_names, preset_path


def _write(tmp_path, text):
    path = tmp_path / "p.yaml"
    path.write_text(text)
    return path


def test_every_shipped_preset_validates():
    for name in preset_names():
        config = load_preset_config(name)
        assert preset_path(name).name == f"{name}.yaml" and config["family"]


def test_yaml_path_builds_like_the_name(tmp_path):
    copy = _write(tmp_path, preset_path("gpt2_tiny").read_text())
    model, _ = build_preset(copy)
    reference, _ = build_preset("gpt2_tiny")
    assert torch.equal(model.transformer.wte.weight, reference.transformer.wte.weight)  # same seed, same weights
    changed = _write(tmp_path, preset_path("gpt2_tiny").read_text().replace("n_layer: 2", "n_layer: 1"))
    assert build_preset(changed)[0].config.n_layer == 1


@pytest.mark.parametrize(("text", "message"), [
    ("family: llava\nmodle: {}\n", "unknown key 'modle'"),
    ("family: vit\n", "key 'family' is 'vit'"),
    ("family: llava\nmodel: {image_sise: 64}\n", "unknown key 'model.image_sise' for family llava"),
    ("family: llava\ntokenizer: {vocab: 10}\n", "unknown key 'tokenizer.vocab'"),
    ("family: gpt2\nmodel: {n_layers: 2}\n", "unknown key 'model.n_layers' for GPT2Config"),
    ("family: llava\nmodel: {vision: {hidden: 3}}\n", "unknown key 'model.vision.hidden' for CLIPVisionConfig"),
    ("family: [\n", "not valid YAML"),
])
def test_bad_yaml_is_a_one_line_error_naming_key_and_file(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(VLForgeError, match=message) as info:
        build_preset(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_unknown_name_and_missing_file():
    with pytest.raises(VLForgeError, match="unknown preset 'llava_huge'; shipped presets: blip_itm_tiny"):
        build_preset("llava_huge")
    with pytest.raises(VLForgeError, match="preset file /nonexistent/p.yaml does not exist"):
        build_preset("/nonexistent/p.yaml")
