"""Caption pairs for the LLaVA caption stages: drawn from a store by source / kind at the mixture's ratio (the
contrastive package's CaptionSampler), a mixture matching nothing refused, examples shaped for the SFT collator."""

from __future__ import annotations

import io

import pytest
import torch
from PIL import Image

from vlforge.common.errors import VLForgeError
from vlforge.common.records import Caption, ImageRecord
from vlforge.common.store import CaptionStore
from vlforge.vlm.mllm.caption_data import CaptionPairsDataModule


def test_a_33_66_mix_draws_alt_text_and_dense_captions_at_its_ratio(shapes_store):
    module = CaptionPairsDataModule(shapes_store, [{"source": "alt_text", "weight": 1.0},
                                                   {"source": "gt", "kind": "dense", "weight": 2.0}],
                                    train_split="pool", val_split=None, batch_size=8)
    module.setup("fit")
    dataset = module.train_set
    torch.manual_seed(0)
    kinds = []
    with CaptionStore(shapes_store) as store:
        for index in range(len(dataset)):
            example = dataset[index]
            record = store.get(example["key"])
            kind = next(c.kind for c in record.captions if c.text == example["response"])
            kinds.append(kind)
            assert example["instruction"] == "" and example["image"].size == (32, 32)
    dense = kinds.count("dense") / len(kinds)
    assert set(kinds) == {"free", "dense"}  # alt-text is stored as kind "free"
    assert abs(dense - 2 / 3) < 0.1, dense
    batch = next(iter(module.train_dataloader()))
    assert isinstance(batch, list) and len(batch) == 8


def test_a_mixture_matching_no_caption_is_refused(shapes_store):
    module = CaptionPairsDataModule(shapes_store, [{"source": "my_captioner", "kind": "dense"}], val_split=None)
    with pytest.raises(VLForgeError, match="matches no caption of split 'pool'"):
        module.setup("fit")


def test_the_sentence_splitter_follows_the_store_by_default(shapes_store, tmp_path):
    """auto (the default): the exact regex on ShapesWorld, pysbd on real captions (e.g. "Mr. Smith ...")."""
    shapes = CaptionPairsDataModule(shapes_store, [{"source": "gt", "kind": "dense"}], val_split=None)
    shapes.setup("fit")
    assert shapes.sampler.sentence_splitter == "regex"
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "PNG")
    real = CaptionStore.create(tmp_path / "real")
    caption = Caption("Mr. Smith walks in St. Louis. He waves.", "web", "free")
    real.put_records([ImageRecord("a", "pool", 8, 8, [caption], image_bytes=buffer.getvalue())])
    real.close()
    module = CaptionPairsDataModule(str(tmp_path / "real"), [{"source": "web", "max_sentences": 1}], val_split=None)
    module.setup("fit")
    assert module.sampler.sentence_splitter == "pysbd"
    assert module.train_set[0]["response"] in ("Mr. Smith walks in St. Louis.", "He waves.")
