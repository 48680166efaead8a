"""The contrastive DataModule over a caption store: training pairs drawn by a caption mixture, evaluation sets.

Training items are (image tensor, text, hard negatives). The text comes from a
:class:`vlforge.common.sampling.CaptionSampler` (weighted mixture or one pair per caption); with
``negatives_per_image > 0`` up to that many of the record's negative captions (kind "negative") ride along for
NegCLIP-style hard negatives; with ``rewrite`` a drawn caption that a frozen query rewriter rewrote is replaced by
its stored rewrite with probability p (:mod:`vlforge.vlm.rewrite_swap`; the batch counts the replaced texts in
``rewritten``). An image that fails to decode, or a record without a matching caption, is skipped
(the collate drops it) and counted in the batch's ``skipped`` dict by reason — no crash, no retry. When the
LitModule hands the model's text tokenizer to the DataModule (``text_tokenizer``, set in
``ContrastiveLitModule.setup``), the collate also tokenizes the batch's captions and negatives, so that this runs in
the DataLoader workers beside image decoding (as open_clip's loader does) and not in the training step. Records
are read without their ``meta`` (the items use only images and captions).

Evaluation items are (image tensor, all the record's evaluation captions, its negatives with their positives) so
that retrieval can use several texts per image and ARO-style accuracy can score each negative against its
positive caption.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from lightning.pytorch import LightningDataModule
from open_clip.transform import image_transform
from torch.utils.data import DataLoader, Dataset

from vlforge.common.errors import VLForgeError
from vlforge.common.resumable_loader import ResumableDataLoader
from vlforge.common.sampling import CaptionChoice, CaptionSampler, negatives
from vlforge.common.sentences import resolve_splitter
from vlforge.common.store import CaptionDataset
from vlforge.vlm.rewrite_swap import RewriteSwap, rewrite_swap


class ContrastivePairs(Dataset):
    """k slots per image (``sampler.pairs_per_image``); item = dict(image, text, negatives) or dict(skip=reason)."""

    def __init__(self, records: CaptionDataset, sampler: CaptionSampler, negatives_per_image: int = 0,
                 rewrite: RewriteSwap | None = None) -> None:
        self.records, self.sampler, self.negatives_per_image = records, sampler, negatives_per_image
        self.rewrite = rewrite
        where = f"split {records.split!r} of the store {records.store.path!r}"
        sampler.require_a_match((records.record(i) for i in range(len(records))), where)
        if rewrite is not None:
            rewrite.require_rewrites((records.record(i) for i in range(len(records))), where)

    def __len__(self) -> int:
        return len(self.records) * self.sampler.pairs_per_image

    def __getitem__(self, index: int) -> dict[str, Any]:
        k = self.sampler.pairs_per_image
        record = self.records.record(index // k)
        # torch's generator is seeded per worker and epoch by the DataLoader, so draws vary by epoch yet replay
        rng = random.Random(int(torch.randint(2**62, (1,)).item()))
        text = self.sampler.text_for(record, rng, slot=index % k)
        if text is None:
            return {"skip": "no_caption"}
        rewritten = None
        if self.rewrite is not None:
            text, rewritten = self.rewrite.apply(record, text, rng)
        try:
            image = self.records.store.load_image(record)
        except VLForgeError:
            return {"skip": "undecodable_image"}
        negs = negatives(record, rng, self.negatives_per_image) if self.negatives_per_image else []
        item = {"image": self.records.transform(image), "text": text, "negatives": negs, "image_id": record.image_id}
        return item if rewritten is None else {**item, "rewritten": rewritten}


class ContrastiveEvalSet(Dataset):
    """Every image of a split with its evaluation captions (matching ``choice``) and its negatives."""

    def __init__(self, records: CaptionDataset, choice: CaptionChoice) -> None:
        self.records, self.choice = records, choice

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        record = self.records.record(index)
        texts = [c.text for c in record.captions if self.choice.matches(c)]
        if not texts:
            raise VLForgeError(f"evaluation record {record.image_id!r} in {self.records.store.path!r} has no caption "
                               f"with {self.choice.describe()}")
        negs = [(c.provenance.get("positive_text"), c.text, c.provenance.get("perturbation", "negative"))
                for c in record.captions if c.kind == "negative" and c.provenance.get("positive_text")]
        return {"image": self.records.transform(self.records.store.load_image(record)), "texts": texts,
                "negatives": negs}


Tokenize = Callable[[list[str]], dict[str, torch.Tensor]]


def collate_pairs(items: list[dict[str, Any]], tokenize: Tokenize | None = None) -> dict[str, Any]:
    """Stack kept items; count skipped ones by reason (and the rewritten texts when rewriting is on). With
    ``tokenize``, also ``tokens``: the texts followed by the negatives, tokenized together (what the training step
    encodes)."""
    kept = [it for it in items if "skip" not in it]
    skipped = Counter(it["skip"] for it in items if "skip" in it)
    images = torch.stack([it["image"] for it in kept]) if kept else torch.empty(0)
    batch = {"images": images, "texts": [it["text"] for it in kept], "image_ids": [it["image_id"] for it in kept],
             "negatives": [n for it in kept for n in it["negatives"]], "skipped": dict(skipped)}
    if any("rewritten" in it for it in items):
        batch["rewritten"] = sum(bool(it.get("rewritten")) for it in kept)
    if tokenize is not None and kept:
        batch["tokens"] = tokenize(batch["texts"] + batch["negatives"])
    return batch


def collate_eval(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"images": torch.stack([it["image"] for it in items]), "texts": [it["texts"] for it in items],
            "negatives": [it["negatives"] for it in items]}


class ContrastiveDataModule(LightningDataModule):
    """Train / val / test loaders over one caption store.

    ``train_captions``: the mixture (list of CaptionChoice fields), ``sampling``: weighted | per_caption.
    ``eval_captions``: which captions evaluation retrieves (default: ground-truth short captions).
    ``sentence_splitter``: how sentence sampling and shearing cut sentences (auto: regex for ShapesWorld, else pysbd).
    ``rewrite``: ``{rewriter: <name>, probability: p}`` replaces a drawn caption by that rewriter's stored rewrite
    with probability p (the query-rewriter paper's CLIP fine-tuning, p = 0.6).
    ``text_tokenizer`` (not a config argument: the model's, set by the LitModule before the loaders are made): when
    set, training batches carry ``tokens`` made in the loader's workers.
    """

    text_tokenizer: Tokenize | None = None

    def __init__(self, store: str, train_captions: list[dict[str, Any]], sampling: str = "weighted",
                 eval_captions: dict[str, Any] | None = None, image_size: int = 32, batch_size: int = 64,
                 eval_batch_size: int = 256, num_workers: int = 0, negatives_per_image: int = 0,
                 train_split: str = "pool", val_split: str | None = "val", test_split: str | None = "test",
                 augment: bool = False, sentence_splitter: str = "auto",
                 rewrite: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.sampler = CaptionSampler(train_captions, mode=sampling)
        self.rewrite = rewrite_swap(rewrite) if rewrite else None
        self.eval_choice = CaptionChoice(**(eval_captions or {"source": "gt", "kind": "short"}))
        self.train_transform = image_transform(image_size, is_train=augment)
        self.eval_transform = image_transform(image_size, is_train=False)

    def _loader(self, dataset: Dataset, batch_size: int, shuffle: bool, collate) -> DataLoader:
        """Training (shuffled): a loader whose epoch order is seeded and whose position is checkpointed, so that
        ``fit --ckpt_path last`` resumes exactly; evaluation: a plain one."""
        workers = self.hparams.num_workers
        if shuffle:
            return ResumableDataLoader(dataset, batch_size, shuffle=True, drop_last=True, num_workers=workers,
                                       collate_fn=collate, persistent_workers=workers > 0)
        return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=collate,
                          persistent_workers=workers > 0)

    def train_dataloader(self) -> DataLoader:
        records = CaptionDataset(self.hparams.store, split=self.hparams.train_split, transform=self.train_transform,
                                 meta=False)
        self.sampler.sentence_splitter = resolve_splitter(self.hparams.sentence_splitter, records.store.info)
        pairs = ContrastivePairs(records, self.sampler, self.hparams.negatives_per_image, self.rewrite)
        collate = collate_pairs if self.text_tokenizer is None else partial(collate_pairs, tokenize=self.text_tokenizer)
        return self._loader(pairs, self.hparams.batch_size, True, collate)

    def _eval_loader(self, split: str) -> DataLoader:
        records = CaptionDataset(self.hparams.store, split=split, transform=self.eval_transform, meta=False)
        return self._loader(ContrastiveEvalSet(records, self.eval_choice), self.hparams.eval_batch_size, False,
                            collate_eval)

    def val_dataloader(self) -> DataLoader | list:
        """The val split's loader; none (no validation) when ``val_split`` is None."""
        return [] if self.hparams.val_split is None else self._eval_loader(self.hparams.val_split)

    def test_dataloader(self) -> DataLoader | list:
        return [] if self.hparams.test_split is None else self._eval_loader(self.hparams.test_split)
