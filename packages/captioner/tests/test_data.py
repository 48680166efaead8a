"""SFT examples and preference pairs from a real ShapesWorld LMDB store; DataModules feeding the LitModules."""

import random

import lightning as L
import pytest

from vlforge.captioner.captioner import Captioner
from vlforge.captioner.data import PreferencePairDataset, SFTCaptionDataset
from vlforge.captioner.datamodules import CaptionerPreferenceDataModule, CaptionerSFTDataModule
from vlforge.captioner.formats import load_format
from vlforge.captioner.lit_preference import CaptionerPreferenceLitModule
from vlforge.captioner.lit_sft import CaptionerSFTLitModule
from vlforge.captioner.perturb import hallucinate
from vlforge.common.errors import VLForgeError
from vlforge.common.presets import build_preset
from vlforge.common.records import Caption
from vlforge.common.shapes.build import build_shapes_store
from vlforge.common.store import CaptionStore


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("shapes") / "store"
    build_shapes_store(path, 120, seed=3, workers=1,
                       split_fractions={"seed": 0.4, "pref": 0.3, "val": 0.2, "test": 0.1})
    return str(path)


def test_sft_examples_are_the_gt_captions_of_each_format(store_path):
    dataset = SFTCaptionDataset(store_path, "seed", targets={"dense": "dense", "alt_fusion": "descriptive"})
    store = CaptionStore(store_path)
    seed_ids = store.ids("seed")
    assert len(dataset) == 2 * len(seed_ids)
    example = dataset[0]
    record = store.get(example["key"].split("/")[0])
    assert example["image"].size == (64, 64)
    fmt = example["key"].split("/")[1]
    kind = {"dense": "dense", "alt_fusion": "descriptive"}[fmt]
    assert example["response"] == record.captions_by(source="gt", kind=kind)[0].text
    if fmt == "alt_fusion":
        assert record.captions_by(source="alt_text")[0].text in example["instruction"]
    else:
        assert example["instruction"] == load_format("dense").prompt()


def test_empty_captions_are_never_training_targets(tmp_path):
    path = tmp_path / "store"
    build_shapes_store(path, 30, seed=1, workers=1, split_fractions={"seed": 1.0})
    with CaptionStore(path, readonly=False) as store:
        ids = store.ids("seed")
        store.append_captions({i: [Caption(text="", source="capA", kind="dense")] for i in ids})
        store.append_captions({ids[0]: [Caption(text="A red star.", source="capA", kind="dense")]})
    dataset = SFTCaptionDataset(str(path), "seed", source="capA")
    assert len(dataset) == 1 and dataset[0]["response"] == "A red star."
    with pytest.raises(VLForgeError, match="no non-empty 'capB'"):
        SFTCaptionDataset(str(path), "seed", source="capB")


def test_negative_pairs_match_their_positive(store_path):
    pairs = PreferencePairDataset(store_path, "pref", chosen_kind="descriptive", rejected="negative")
    store = CaptionStore(store_path)
    for i in range(len(pairs)):
        pair = pairs[i]
        record = store.get(pair["key"].split("/")[0])
        negative = [c for c in record.captions_by(kind="negative") if c.text == pair["rejected"]]
        assert negative and negative[0].provenance["positive_text"] == pair["chosen"]
        assert pair["instruction"] == load_format("descriptive").prompt()


def test_hallucinated_rejections_change_colours_or_shapes():
    rng = random.Random(0)
    text = "A Red circle left of a blue star."
    out = hallucinate(text, rng, edits=2)
    assert out != text and len(out.split()) == len(text.split())
    assert out[2].isupper()
    assert hallucinate("Nothing to see here.", rng) is None


def test_own_captions_keep_the_worst_scored(tmp_path):
    path = tmp_path / "store"
    build_shapes_store(path, 10, seed=2, workers=1, split_fractions={"pref": 1.0})
    with CaptionStore(path, readonly=False) as store:
        ids = store.ids("pref")
        store.append_captions({i: [Caption("mild", "capA", "descriptive", scores={"chair_i": 0.1}),
                                   Caption("worst", "capA", "descriptive", scores={"chair_i": 0.9})] for i in ids})
    pairs = PreferencePairDataset(str(path), "pref", rejected="source:capA")
    assert len(pairs) == len(ids) and {pairs[i]["rejected"] for i in range(len(pairs))} == {"worst"}
    with pytest.raises(VLForgeError, match="rejected 'other'"):
        PreferencePairDataset(str(path), "pref", rejected="other")


def test_datamodules_drive_both_lit_modules(store_path, tmp_path):
    trainer_args = dict(max_steps=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=1,
                        default_root_dir=tmp_path)
    sft = CaptionerSFTLitModule(Captioner.from_parts(*build_preset("llava_tiny")), lr=1e-3)
    data = CaptionerSFTDataModule(store_path, batch_size=4, targets={"short": "short", "dense": "dense"})
    trainer = L.Trainer(**trainer_args)
    trainer.fit(sft, datamodule=data)
    assert trainer.global_step == 2
    trainer.validate(sft, datamodule=data, verbose=False)
    assert "val/loss" in trainer.callback_metrics
    pref = CaptionerPreferenceLitModule(Captioner.from_parts(*build_preset("llava_tiny")), reference="precomputed")
    pref_data = CaptionerPreferenceDataModule(store_path, batch_size=4, rejected="hallucinated")
    trainer = L.Trainer(**trainer_args)
    trainer.fit(pref, datamodule=pref_data)
    assert trainer.global_step == 2
    assert len(pref.reference_logps) == len(pref_data.train_set)
