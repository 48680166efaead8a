"""Captioner evaluation on ShapesWorld (CHAIR, colour-attribute accuracy, length) and starting from a checkpoint."""

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from vlforge.captioner.captioner import Captioner
from vlforge.captioner.evaluation import (
    colour_attribute_accuracy,
    colour_shape_mentions,
    evaluate_captioner,
    score_captions,
)
from vlforge.captioner.lit_preference import CaptionerPreferenceLitModule
from vlforge.captioner.lit_sft import CaptionerSFTLitModule
from vlforge.captioner.weights import weights_from
from vlforge.common.errors import VLForgeError
from vlforge.common.presets import build_preset
from vlforge.common.shapes.build import build_shapes_store
from vlforge.common.store import CaptionDataset

SCENE = {"objects": [{"shape": "circle", "colour": "red"}, {"shape": "star", "colour": "blue"}]}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("eval") / "store")
    build_shapes_store(path, 12, seed=11, workers=1, split_fractions={"test": 1.0})
    return path


def test_pair_mentions_skip_size_words_and_map_synonyms():
    caption = "A large red circle, the crimson disc and a blue tiny star on a grey background. A green thing."
    assert colour_shape_mentions(caption) == [("red", "circle"), ("red", "circle"), ("blue", "star")]
    assert colour_shape_mentions("A circle is red. Red and blue squares.") == [("blue", "square")]


def test_colour_accuracy_counts_every_mention_against_the_scene():
    captions = ["A red circle and a blue circle.", "A blue star, a blue star and a red star.", "Nothing here."]
    result = colour_attribute_accuracy(captions, [SCENE] * 3)
    # mentions: (red,circle)+ (blue,circle)- | (blue,star)+ (blue,star)+ (red,star)- | none -> 3 of 5
    assert (result.num_pairs, result.num_correct) == (5, 3)
    assert result.accuracy == pytest.approx(60.0)
    assert result.wrong == [[("blue", "circle")], [("red", "star")], []]
    # all five name a shape the scene has (circle, star): on present shapes also 3 of 5
    assert (result.num_pairs_present, result.accuracy_present) == (5, pytest.approx(60.0))
    assert colour_attribute_accuracy(["Nothing here."], [SCENE]).accuracy == 0.0
    with pytest.raises(VLForgeError, match="2 captions but 1 scene"):
        colour_attribute_accuracy(["a", "b"], [SCENE])


def test_score_captions_combines_chair_colours_and_length():
    captions = ["A red circle and a blue star.", "A red square beside a blue star."]
    result = score_captions(captions, [SCENE, SCENE], ["a", "b"])
    # objects mentioned: circle, star | square (hallucinated), star
    assert result.chair_i == pytest.approx(25.0) and result.chair_s == pytest.approx(50.0)
    assert result.colour_accuracy == pytest.approx(75.0)
    # (red, square) names an absent shape: CHAIR counts it, the colour accuracy on present shapes does not
    assert result.colour_accuracy_present == pytest.approx(100.0)
    assert score_captions(["A blue circle and a green hexagon."], [SCENE]).colour_accuracy_present == 0.0
    assert result.mean_length == pytest.approx((7 + 7) / 2)
    assert result.summary()["num_object_mentions"] == 4 and result.image_ids == ["a", "b"]


def test_ground_truth_dense_captions_score_perfectly(store):
    dataset = CaptionDataset(store, split="test")
    records = [dataset.record(i) for i in range(len(dataset))]
    captions = [r.captions_by(source="gt", kind="dense")[0].text for r in records]
    result = score_captions(captions, [r.meta["scene_graph"] for r in records])
    assert result.chair_i == 0.0 and result.colour_accuracy == 100.0
    assert result.num_pair_mentions >= sum(len(r.meta["scene_graph"]["objects"]) for r in records)


def test_evaluate_captioner_generates_one_greedy_caption_per_image(store):
    captioner = Captioner(source="preset:llava_tiny")
    first = evaluate_captioner(captioner, store, limit=5, decoding={"max_new_tokens": 6}, batch_size=2)
    again = evaluate_captioner(captioner, store, limit=5, decoding={"max_new_tokens": 6}, batch_size=5)
    assert first.num_images == 5 and len(first.captions) == 5
    assert first.image_ids == [CaptionDataset(store, split="test").record(i).image_id for i in range(5)]
    assert first.captions == again.captions  # greedy: the batch size does not change the captions
    assert all(len(c.split()) <= 6 for c in first.captions)
    with pytest.raises(VLForgeError, match="split 'pool'"):
        evaluate_captioner(captioner, store, split="pool")


def _fit_one_step(module, examples, tmp_path):
    trainer = L.Trainer(max_steps=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(module, DataLoader(examples, batch_size=len(examples), collate_fn=list))
    path = tmp_path / "last.ckpt"
    trainer.save_checkpoint(path)
    return path


def test_weights_from_an_sft_checkpoint_restore_the_trained_captioner(images, tmp_path):
    L.seed_everything(0)
    trained = CaptionerSFTLitModule(Captioner(source="preset:llava_tiny"), lr=1e-2, warmup_ratio=0.0)
    examples = [{"image": img, "instruction": "Describe the image.", "response": "A red circle."} for img in images]
    path = _fit_one_step(trained, examples, tmp_path)
    fresh = Captioner(source="preset:llava_tiny")
    assert not torch.equal(fresh.model.lm_head.weight, trained.model.lm_head.weight)
    restored = Captioner(source="preset:llava_tiny", weights=str(path))
    for name, value in trained.model.state_dict().items():
        torch.testing.assert_close(restored.model.state_dict()[name], value, msg=name)
    with pytest.raises(VLForgeError, match="last.ckpt lacks weight"):
        weights_from(path, build_preset("llava_small")[0])


def test_weights_from_a_preference_checkpoint_take_the_policy_not_the_reference(images, tmp_path):
    L.seed_everything(0)
    module = CaptionerPreferenceLitModule(Captioner(source="preset:llava_tiny"), reference="copy", lr=1e-2,
                                          warmup_ratio=0.0)
    pairs = [{"key": str(i), "image": img, "instruction": "Describe the image.", "chosen": "A red circle.",
              "rejected": "A blue star."} for i, img in enumerate(images)]
    path = _fit_one_step(module, pairs, tmp_path)
    assert not torch.equal(module.model.lm_head.weight, module.reference_model.lm_head.weight)
    model = weights_from(path, build_preset("llava_tiny")[0])
    torch.testing.assert_close(model.lm_head.weight, module.model.lm_head.weight)


def test_weights_from_bad_files_name_the_file(tmp_path):
    model = build_preset("llava_tiny")[0]
    with pytest.raises(VLForgeError, match="missing.ckpt"):
        weights_from(tmp_path / "missing.ckpt", model)
    other = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"encoder.weight": torch.zeros(2)}}, other)
    with pytest.raises(VLForgeError, match="other.ckpt: no model weights"):
        weights_from(other, model)
