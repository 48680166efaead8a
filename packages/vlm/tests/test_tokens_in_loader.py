"""Tokenization in the DataLoader workers: the LitModule hands its model's weight-free ``text_tokenizer`` to the
ContrastiveDataModule, whose collate tokenizes texts + negatives; training is the same as tokenizing in the step."""

from __future__ import annotations

import io
import pickle

import lightning as L
import torch
from torch import nn

from vlforge.vlm.data import ContrastiveDataModule
from vlforge.vlm.lit_blip import BlipLitModule
from vlforge.vlm.lit_contrastive import ContrastiveLitModule
from vlforge.vlm.models import ContrastiveModel, OpenClipImageTower, OpenClipTextTower
from vlforge.vlm.models.blip import BlipPretrainingModel
from vlforge.vlm.models.hf_text_tower import HFTextTower


class _NoWeights(pickle.Pickler):
    """Pickles an object graph, failing on any tensor or module in it."""

    def reducer_override(self, obj):
        if isinstance(obj, (torch.Tensor, nn.Module)):
            raise AssertionError(f"the tokenizer holds a {type(obj).__name__}")
        return NotImplemented


def _datamodule(store: str, **kwargs) -> ContrastiveDataModule:
    return ContrastiveDataModule(store, **({"train_captions": [{"source": "gt", "kind": "short"}], "batch_size": 8,
                                            "negatives_per_image": 1, "val_split": None, "test_split": None}
                                           | kwargs))


def test_text_tokenizers_hold_no_weights_and_tokenize_as_the_model(tiny_open_clip, minilm_dir):
    texts = ["a red circle left of a blue square", "two green stars", "a triangle"]
    for text_tower in (OpenClipTextTower(tiny_open_clip), HFTextTower(minilm_dir, embed_dim=32)):
        model = ContrastiveModel(OpenClipImageTower(tiny_open_clip), text_tower)
        _NoWeights(io.BytesIO()).dump(model.text_tokenizer)
        shipped = pickle.loads(pickle.dumps(model.text_tokenizer))
        expected, got = model.tokenize(texts), shipped(texts)
        assert expected.keys() == got.keys() and all(torch.equal(expected[k], got[k]) for k in expected)


def test_the_collate_in_two_workers_tokenizes_texts_then_negatives(shapes_store, tiny_open_clip):
    model = ContrastiveModel(OpenClipImageTower(tiny_open_clip), OpenClipTextTower(tiny_open_clip))
    datamodule = _datamodule(shapes_store, num_workers=2)
    datamodule.text_tokenizer = model.text_tokenizer
    batch = next(iter(datamodule.train_dataloader()))
    assert len(batch["texts"]) == 8 and len(batch["negatives"]) == 8
    expected = model.tokenize(batch["texts"] + batch["negatives"])["input_ids"]
    assert torch.equal(batch["tokens"]["input_ids"], expected)


class _SeenTokens(L.Callback):
    def __init__(self) -> None:
        self.with_tokens: list[bool] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.with_tokens.append("tokens" in batch)


def _fit(store: str, config: dict, tmp_path, tokens_from_loader: bool) -> tuple[dict, list[bool]]:
    torch.manual_seed(0)
    module = ContrastiveLitModule(ContrastiveModel(OpenClipImageTower(config), OpenClipTextTower(config)), lr=1e-3)
    module.tokens_from_loader = tokens_from_loader
    seen = _SeenTokens()
    trainer = L.Trainer(max_steps=3, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                        callbacks=[seen], deterministic=True)
    trainer.fit(module, _datamodule(store, num_workers=1))
    return module.model.state_dict(), seen.with_tokens


def test_fit_with_tokens_from_the_loader_equals_tokenizing_in_the_step(shapes_store, tiny_open_clip, tmp_path):
    from_loader, seen = _fit(shapes_store, tiny_open_clip, tmp_path / "a", tokens_from_loader=True)
    in_step, seen_in_step = _fit(shapes_store, tiny_open_clip, tmp_path / "b", tokens_from_loader=False)
    assert seen == [True] * 3 and seen_in_step == [False] * 3
    assert from_loader.keys() == in_step.keys()
    assert all(torch.equal(from_loader[k], in_step[k]) for k in from_loader)


def test_blip_takes_no_tokens_from_the_loader(shapes_store, tmp_path):
    """BLIP tokenizes texts and negatives apart; its setup clears a tokenizer an earlier module left."""
    datamodule = _datamodule(shapes_store)
    datamodule.text_tokenizer = print  # left by an earlier run
    module = BlipLitModule(BlipPretrainingModel(image_size=32, text={"max_position_embeddings": 64}, max_length=40))
    trainer = L.Trainer(max_steps=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(module, datamodule)
    assert datamodule.text_tokenizer is None
