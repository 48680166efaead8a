"""The contrastive DataModule on a real ShapesWorld store: mixtures, per-caption slots, negatives, bad records."""

from __future__ import annotations

import io

import pytest
import torch
from PIL import Image

from vlforge.common.errors import VLForgeError
from vlforge.common.records import Caption, ImageRecord
from vlforge.common.store import CaptionStore
from vlforge.vlm.data import ContrastiveDataModule


def _datamodule(store: str, **kwargs) -> ContrastiveDataModule:
    args = {"train_captions": [{"source": "alt_text"}], "batch_size": 8, "eval_batch_size": 16} | kwargs
    return ContrastiveDataModule(store, **args)


def test_training_batches_hold_images_texts_and_negatives(shapes_store):
    dm = _datamodule(shapes_store, train_captions=[{"source": "gt", "kind": "short"}], negatives_per_image=2)
    batch = next(iter(dm.train_dataloader()))
    assert batch["images"].shape == (8, 3, 32, 32)
    assert len(batch["texts"]) == 8 and all(isinstance(t, str) and t for t in batch["texts"])
    assert 8 <= len(batch["negatives"]) <= 16 and batch["skipped"] == {}
    store = CaptionStore(shapes_store)
    gt_short = {c.text for r in store.iter_records(split="pool") for c in r.captions_by("gt", "short")}
    assert set(batch["texts"]) <= gt_short


def test_per_caption_mode_has_k_slots_per_image(shapes_store):
    dm = _datamodule(shapes_store, train_captions=[{"source": "alt_text"}, {"source": "gt", "kind": "short"}],
                     sampling="per_caption")
    loader = dm.train_dataloader()
    pool = CaptionStore(shapes_store).counts()["splits"]["pool"]
    assert len(loader.dataset) == 2 * pool
    assert dm.sampler.epoch_scale == 0.5


def test_eval_batches_carry_every_eval_caption_and_negative_pairs(shapes_store):
    dm = _datamodule(shapes_store)
    batch = next(iter(dm.val_dataloader()))
    assert batch["images"].shape[1:] == (3, 32, 32)
    assert all(len(texts) >= 1 for texts in batch["texts"])
    kinds = {kind for negs in batch["negatives"] for _, _, kind in negs}
    assert kinds & {"attribute_swap", "relation_swap", "object_replacement"}


def test_no_val_or_test_split_means_no_evaluation(shapes_store):
    """``val_split: null`` turns validation off (it used to evaluate every image of the store)."""
    dm = _datamodule(shapes_store, val_split=None, test_split=None)
    assert dm.val_dataloader() == [] and dm.test_dataloader() == []


def test_eval_store_without_the_needed_captions_is_a_one_line_error(shapes_store):
    dm = _datamodule(shapes_store, eval_captions={"source": "llava", "kind": "dense"})
    with pytest.raises(VLForgeError, match="no caption with source=llava kind=dense"):
        next(iter(dm.val_dataloader()))


def test_undecodable_image_is_skipped_and_counted(tmp_path):
    store = CaptionStore.create(tmp_path / "bad")
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), "red").save(buffer, format="PNG")
    records = [ImageRecord(f"img-{i}", "pool", 32, 32, [Caption(f"a red square {i}", "alt_text")],
                           image_bytes=buffer.getvalue() if i != 2 else b"not a png at all")
               for i in range(4)]
    store.put_records(records)
    store.close()
    dm = _datamodule(str(tmp_path / "bad"), batch_size=4)
    batch = next(iter(dm.train_dataloader()))
    assert batch["skipped"] == {"undecodable_image": 1}
    assert batch["images"].shape[0] == 3 and len(batch["texts"]) == 3
    assert torch.isfinite(batch["images"]).all()


def test_sentence_splitter_auto_is_the_regex_for_shapesworld_and_pysbd_for_real_captions(shapes_store, tmp_path):
    dm = _datamodule(shapes_store, train_captions=[{"source": "gt", "kind": "dense", "max_sentences": 2}])
    next(iter(dm.train_dataloader()))
    assert dm.sampler.sentence_splitter == "regex"
    store = CaptionStore.create(tmp_path / "real")
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), "red").save(buffer, format="PNG")
    text = "Mr. Smith walks his dog in St. Louis. The U.S. flag flies at 5 p.m. daily."
    store.put_records([ImageRecord(f"img-{i}", "pool", 32, 32, [Caption(text, "gt", "dense")],
                                   image_bytes=buffer.getvalue()) for i in range(4)])
    store.close()
    dm = _datamodule(str(tmp_path / "real"), batch_size=4, train_captions=[{"source": "gt", "max_sentences": 1}])
    batch = next(iter(dm.train_dataloader()))
    assert dm.sampler.sentence_splitter == "pysbd"
    assert set(batch["texts"]) <= {"Mr. Smith walks his dog in St. Louis.", "The U.S. flag flies at 5 p.m. daily."}


def test_a_mixture_matching_no_caption_is_a_one_line_error_not_an_empty_training(shapes_store):
    """Issue 16 item 10: every item would be skipped as no_caption and the fit would "train" and exit 0."""
    dm = _datamodule(shapes_store, train_captions=[{"source": "llava", "kind": "dense"}, {"source": "typo_gt"}])
    with pytest.raises(VLForgeError, match=r"matches no caption of split 'pool'.*nothing would train"):
        dm.train_dataloader()
