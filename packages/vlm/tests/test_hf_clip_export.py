"""Hugging Face CLIP export: a whole trained open_clip CLIP becomes a CLIPModel folder with tokenizer and processor
that gives vlforge's embeddings, and transformers' zero-shot-image-classification pipeline ranks labels as vlforge
does."""

from __future__ import annotations

import pytest
import torch
from open_clip.transform import image_transform
from transformers import AutoProcessor, CLIPModel, pipeline

from vlforge.common.console import console
from vlforge.common.errors import VLForgeError
from vlforge.common.store import CaptionDataset
from vlforge.vlm.cli import TOOLS
from vlforge.vlm.hf_clip_export import export_hf_clip, to_hf_clip
from vlforge.vlm.loading import model_from_checkpoint
from vlforge.vlm.models import ContrastiveModel, OpenClipImageTower, OpenClipTextTower

TEXTS = ["a red circle", "Two BLUE squares, left of a star!", "a photo of a hexagon.", ""]


def _trained_like(config: dict) -> ContrastiveModel:
    torch.manual_seed(0)
    model = ContrastiveModel(OpenClipImageTower(config), OpenClipTextTower(config))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return model.eval()


def test_clip_model_and_tokenizer_give_vlforges_embeddings(tiny_open_clip, tmp_path):
    model = _trained_like(tiny_open_clip)
    out = export_hf_clip(model, tmp_path / "clip", tiny_open_clip)
    hf = CLIPModel.from_pretrained(out).eval()
    processor = AutoProcessor.from_pretrained(out)
    hf_ids = processor(text=TEXTS)["input_ids"]
    open_clip_ids = model.tokenize(TEXTS)["input_ids"]
    assert hf_ids == [row[:row.index(49407) + 1] for row in open_clip_ids.tolist()]  # open_clip's ids up to the end
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        out = hf(pixel_values=images, **processor(text=TEXTS, padding=True, return_tensors="pt"))
        torch.testing.assert_close(out.image_embeds, model.encode_image(images), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(out.text_embeds, model.encode_text(model.tokenize(TEXTS)), atol=1e-5, rtol=1e-4)
        assert torch.allclose(hf.logit_scale.exp(), model.scale())


def test_zero_shot_pipeline_ranks_labels_as_vlforge(clip_checkpoint, shapes_store, tmp_path, capsys):
    out = tmp_path / "hf_clip"
    assert console("vlm", TOOLS, ["export", "--checkpoint", str(clip_checkpoint), "--format", "hf-clip",
                                  "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == str(out)
    model, _ = model_from_checkpoint(clip_checkpoint)
    model.eval()
    labels = ["circle", "square", "triangle", "star", "hexagon", "diamond"]
    classify = pipeline("zero-shot-image-classification", model=str(out), device="cpu")
    dataset = CaptionDataset(shapes_store, split="test")
    transform = image_transform(32, is_train=False)
    for index in range(3):
        image, _ = dataset[index]
        scores = {r["label"]: r["score"] for r in classify(image, candidate_labels=labels,
                                                            hypothesis_template="a photo of a {}.")}
        with torch.no_grad():
            logits = model.scale() * model.encode_image(transform(image)[None]) @ model.encode_text(
                model.tokenize([f"a photo of a {label}." for label in labels])).T
        expected = logits.softmax(-1)[0]
        assert [scores[label] for label in labels] == pytest.approx(expected.tolist(), abs=1e-4)


def test_text_towers_without_a_counterpart_are_refused(tiny_open_clip):
    siglip_like = ContrastiveModel(OpenClipImageTower(tiny_open_clip), OpenClipTextTower(tiny_open_clip),
                                   init_logit_bias=-10.0)
    with pytest.raises(VLForgeError, match="logit bias"):
        to_hf_clip(siglip_like, tiny_open_clip)
    argmax_free = tiny_open_clip | {"text_cfg": tiny_open_clip["text_cfg"] | {"pool_type": "last"}}
    with pytest.raises(VLForgeError, match="argmax pooling"):
        to_hf_clip(_trained_like(tiny_open_clip), argmax_free)
