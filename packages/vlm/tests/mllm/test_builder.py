"""build_llava: a CLIP / SigLIP vision tower + LLaVA's projector + a causal LM as LlavaForConditionalGeneration,
saved in a folder transformers' Auto classes load back with identical logits."""

from __future__ import annotations

import json

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    AutoModelForImageTextToText,
    AutoProcessor,
    CLIPConfig,
    CLIPImageProcessor,
    CLIPModel,
    CLIPVisionModel,
    CLIPVisionModelWithProjection,
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedTokenizerFast,
    SiglipVisionModel,
)

from vlforge.common.errors import VLForgeError
from vlforge.common.presets import build_preset
from vlforge.vlm.hf_vision_export import export_hf_vision
from vlforge.vlm.mllm import build_llava
from vlforge.vlm.mllm.builder import image_token_count
from vlforge.vlm.models import ContrastiveModel, OpenClipImageTower, OpenClipTextTower


@pytest.mark.parametrize("family", ["clip", "siglip"])
def test_processor_expands_the_image_token_to_the_vision_features(towers, image_inputs, family):
    model, processor = build_llava(towers[family], "preset:llama_tiny")
    assert model.config.vision_feature_select_strategy == ("default" if family == "clip" else "full")
    assert model.config.vision_feature_layer == -2
    inputs = image_inputs(processor)
    in_text = int((inputs["input_ids"] == model.config.image_token_index).sum())
    with torch.no_grad():
        features = model.get_image_features(pixel_values=inputs["pixel_values"])
    features = features.pooler_output if hasattr(features, "pooler_output") else features
    per_image = sum(f.shape[0] for f in features) if isinstance(features, (list, tuple)) else features.shape[1]
    assert in_text == per_image == image_token_count(32, 8, family, model.config.vision_feature_select_strategy)
    assert in_text == 16  # (32 / 8)^2 patches: CLIP's CLS dropped, SigLIP has none
    assert model.config.image_seq_length == in_text
    assert processor.tokenizer.convert_tokens_to_ids("<image>") == model.config.image_token_index


@pytest.mark.parametrize(("family", "lm"), [("clip", "preset:llama_tiny"), ("siglip", "preset:gpt2_tiny")])
def test_saved_folder_loads_with_auto_classes_and_gives_identical_logits(towers, image_inputs, tmp_path, family,
                                                                         lm):
    model, processor = build_llava(towers[family], lm)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    for name in ("config.json", "model.safetensors", "tokenizer.json", "processor_config.json",
                 "generation_config.json", "chat_template.jinja"):
        assert (tmp_path / name).is_file(), name
    saved = json.loads((tmp_path / "processor_config.json").read_text())
    assert saved["image_processor"]["image_processor_type"].startswith(type(processor.image_processor).__name__[:6])
    loaded = AutoModelForImageTextToText.from_pretrained(tmp_path).eval()
    loaded_processor = AutoProcessor.from_pretrained(tmp_path)
    assert type(loaded).__name__ == "LlavaForConditionalGeneration"
    inputs, loaded_inputs = image_inputs(processor), image_inputs(loaded_processor)
    assert torch.equal(inputs["input_ids"], loaded_inputs["input_ids"])
    assert torch.equal(inputs["pixel_values"], loaded_inputs["pixel_values"])
    with torch.no_grad():
        logits = model(**inputs).logits
        loaded_logits = loaded(**loaded_inputs).logits
        other_image = model(**image_inputs(processor, seed=1)).logits
    assert torch.equal(logits, loaded_logits)
    assert not torch.allclose(logits, other_image)  # the image reaches the logits


@pytest.mark.parametrize("lm", ["preset:llama_tiny", "preset:gpt2_tiny"])
def test_pretrained_vision_tower_and_lm_weights_are_kept(towers, lm):
    model, processor = build_llava(towers["clip"], lm)
    language_model, tokenizer = build_preset(lm.removeprefix("preset:"))
    language_model.eval()  # GPT-2 has dropout
    ids = tokenizer(["a red circle left of a blue square"], return_tensors="pt")["input_ids"]
    pixels = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids).logits, language_model(input_ids=ids).logits)
        tower = CLIPVisionModel.from_pretrained(towers["clip"])
        torch.testing.assert_close(model.model.vision_tower(pixels).last_hidden_state,
                                   tower(pixels).last_hidden_state)


def test_projector_init_is_seeded(towers):
    first, _ = build_llava(towers["siglip"], "preset:llama_tiny", seed=3)
    again, _ = build_llava(towers["siglip"], "preset:llama_tiny", seed=3)
    other, _ = build_llava(towers["siglip"], "preset:llama_tiny", seed=4)
    weight = "model.multi_modal_projector.linear_1.weight"
    assert torch.equal(first.state_dict()[weight], again.state_dict()[weight])
    assert not torch.equal(first.state_dict()[weight], other.state_dict()[weight])
    assert isinstance(first.model.vision_tower, SiglipVisionModel)


def test_vlforge_clip_exported_as_hf_vision_is_a_vision_tower(tiny_open_clip, tmp_path):
    torch.manual_seed(0)
    clip = ContrastiveModel(OpenClipImageTower(tiny_open_clip), OpenClipTextTower(tiny_open_clip)).eval()
    export_hf_vision(clip, tmp_path / "vision", tiny_open_clip)
    model, processor = build_llava(str(tmp_path / "vision"), "preset:llama_tiny", vision_feature_layer=-1)
    exported = CLIPVisionModelWithProjection.from_pretrained(tmp_path / "vision").eval()
    pixels = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.model.vision_tower(pixels).last_hidden_state,
                                   exported(pixels).last_hidden_state)
    assert processor.image_processor.crop_size == {"height": 32, "width": 32}  # the export's own processor


def _word_level_lm(folder) -> str:
    """A local GPT-2 folder whose tokenizer has neither the image token nor a pad token."""
    words = ["USER:", "ASSISTANT:", "what", "colour", "is", "it?", "</s>", "<unk>"]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="</s>", unk_token="<unk>")
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config(vocab_size=len(words), n_embd=32, n_layer=1, n_head=2, n_positions=64)
                    ).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def test_local_lm_folder_gets_the_image_and_pad_tokens(towers, image_inputs, tmp_path):
    model, processor = build_llava(towers["clip"], _word_level_lm(tmp_path / "lm"))
    tokenizer = processor.tokenizer
    assert len(tokenizer) == 10 and tokenizer.pad_token == "<pad>"
    assert model.get_input_embeddings().weight.shape[0] == model.lm_head.weight.shape[0] == 10
    inputs = image_inputs(processor, "what colour is it?")
    assert int((inputs["input_ids"] == model.config.image_token_index).sum()) == 16
    with torch.no_grad():
        assert model(**inputs).logits.shape[-1] == 10


def test_bad_sources_are_one_line_errors(towers, tmp_path):
    with pytest.raises(VLForgeError, match="vision .*: cannot be loaded"):
        build_llava(str(tmp_path / "absent"), "preset:llama_tiny")
    lm_folder = _word_level_lm(tmp_path / "lm")
    with pytest.raises(VLForgeError, match="a 'gpt2' model; a CLIP or SigLIP vision tower is needed"):
        build_llava(lm_folder, "preset:llama_tiny")
    with pytest.raises(VLForgeError, match="preset 'llava_tiny' is not a text causal LM"):
        build_llava(towers["clip"], "preset:llava_tiny")
    with pytest.raises(VLForgeError, match="SigLIP has no CLS token"):
        build_llava(towers["siglip"], "preset:llama_tiny", vision_feature_select_strategy="default")
    with pytest.raises(VLForgeError, match="vision_feature_layer 5 is outside"):
        build_llava(towers["clip"], "preset:llama_tiny", vision_feature_layer=5)


def test_remote_code_is_not_run_unless_turned_on(tmp_path):
    marker = tmp_path / "ran"
    folder = tmp_path / "custom"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({
        "model_type": "custom_vision", "auto_map": {"AutoConfig": "configuration_custom.CustomConfig"}}))
    (folder / "configuration_custom.py").write_text(
        f"open({str(marker)!r}, 'w').close()\nfrom transformers import PretrainedConfig\n"
        "class CustomConfig(PretrainedConfig):\n    model_type = 'custom_vision'\n")
    with pytest.raises(VLForgeError, match="vision .*custom.*: cannot be loaded"):
        build_llava(str(folder), "preset:llama_tiny")
    assert not marker.exists()
    with pytest.raises(VLForgeError, match="a 'custom_vision' model; a CLIP or SigLIP vision tower is needed"):
        build_llava(str(folder), "preset:llama_tiny", trust_remote_code=True)
    assert marker.exists()  # the option reaches transformers


def test_dtype_option(towers, image_inputs):
    model, processor = build_llava(towers["siglip"], "preset:llama_tiny", dtype="bfloat16")
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    inputs = image_inputs(processor)
    with torch.no_grad():
        assert model(**inputs.to(torch.bfloat16)).logits.dtype == torch.bfloat16
    with pytest.raises(VLForgeError, match="dtype 'int8'"):
        build_llava(towers["siglip"], "preset:llama_tiny", dtype="int8")



def test_full_clip_checkpoint_gives_its_vision_half_and_processor(tmp_path):
    torch.manual_seed(0)
    small = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    clip = CLIPModel(CLIPConfig(vision_config=small | {"image_size": 32, "patch_size": 8}, text_config=small))
    clip.save_pretrained(tmp_path)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
                       image_mean=[0.5, 0.5, 0.5], image_std=[0.25, 0.25, 0.25]).save_pretrained(tmp_path)
    model, processor = build_llava(str(tmp_path), "preset:llama_tiny")
    assert list(processor.image_processor.image_mean) == [0.5, 0.5, 0.5]  # the folder's own processor
    pixels = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model.model.vision_tower(pixels).last_hidden_state,
                                   clip.vision_model(pixels).last_hidden_state)
