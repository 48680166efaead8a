"""Caption pairs for the LLaVA caption stages (pre-align, pre-train): images of a store split, each with a caption
drawn from a mixture of sources and kinds (:class:`vlforge.common.sampling.CaptionSampler`, the sampler the
contrastive data module uses; e.g. the caption-format paper's 33/66 alt-text / dense mix), as plain examples
``{key, image, instruction, response}`` that the stage's collator turns into a batch.

Images without a caption of the mixture are left out when the data module is set up, counted and logged with
their ids; an image that fails to decode is skipped in its batch with a warning naming it.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from vlforge.common.errors import VLForgeError
from vlforge.common.resumable_loader import ResumableDataLoader
from vlforge.common.sampling import CaptionSampler
from vlforge.common.sentences import resolve_splitter
from vlforge.common.store import CaptionDataset

log = logging.getLogger(__name__)
_IDS_SHOWN = 5


def kept_examples(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The batch's examples; items marked ``skip`` (an undecodable image) are dropped with a warning naming them."""
    for item in items:
        if "skip" in item:
            log.warning("example %s skipped: %s", item.get("key", "?"), item["skip"])
    return [item for item in items if "skip" not in item]


def example_loader(dataset: Dataset, batch_size: int, shuffle: bool, num_workers: int, seed: int = 0) -> DataLoader:
    """Training (shuffled): a resumable loader (seeded epoch order, position checkpointed); evaluation: a plain
    one. Batches are lists of examples."""
    if shuffle:
        return ResumableDataLoader(dataset, batch_size, shuffle=True, seed=seed, num_workers=num_workers,
                                   collate_fn=kept_examples, persistent_workers=num_workers > 0)
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers,
                      collate_fn=kept_examples, persistent_workers=num_workers > 0)


def ids_text(ids: Sequence[str]) -> str:
    more = f", ... (+{len(ids) - _IDS_SHOWN})" if len(ids) > _IDS_SHOWN else ""
    return ", ".join(ids[:_IDS_SHOWN]) + more


class CaptionPairs(Dataset):
    """The images of ``split`` that have a caption of ``sampler``'s mixture (the first ``limit`` of the split)."""

    def __init__(self, store: str, split: str, sampler: CaptionSampler, instruction: str = "",
                 limit: int | None = None) -> None:
        self.records = CaptionDataset(store, split=split)
        self.sampler, self.instruction = sampler, instruction
        count = len(self.records) if limit is None else min(limit, len(self.records))
        self.indices, missing = [], []
        for index in range(count):
            record = self.records.record(index)
            if any(c.matches(cap) for cap in record.captions for c in sampler.choices):
                self.indices.append(index)
            else:
                missing.append(record.image_id)
        mixture = "; ".join(c.describe() for c in sampler.choices)
        if not self.indices:
            raise VLForgeError(f"the caption mixture [{mixture}] matches no caption of split {split!r} of the store "
                               f"{store!r}: nothing would train; check the sources and kinds (`vlforge-store stats`)")
        detail = f" ({ids_text(missing)})" if missing else ""
        log.info("caption pairs %s/%s [%s]: kept %d images, skipped %d without a caption of the mixture%s", store,
                 split, mixture, len(self.indices), len(missing), detail)
        self.skipped = missing

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict[str, Any]:
        record = self.records.record(self.indices[index])
        # torch's generator is seeded per worker and epoch by the DataLoader: draws vary by epoch yet replay
        rng = random.Random(int(torch.randint(2**62, (1,)).item()))
        try:
            image = self.records.store.load_image(record)
        except VLForgeError as err:
            return {"key": record.image_id, "skip": str(err)}
        return {"key": record.image_id, "image": image, "instruction": self.instruction,
                "response": self.sampler.text_for(record, rng)}


class CaptionPairsDataModule(L.LightningDataModule):
    """Caption pairs of ``train_split`` (and ``val_split`` for the validation loss) drawn by ``captions`` (a list
    of CaptionChoice fields: source, kind, weight, max_sentences, shear_tokens). ``instruction``: the text after
    the image (LLaVA's caption stages use none). ``sentence_splitter``: how sentence sampling and shearing cut
    sentences (auto: regex for ShapesWorld, else pysbd; as the contrastive data module)."""

    def __init__(self, store: str, captions: list[dict[str, Any]], instruction: str = "",
                 train_split: str = "pool", val_split: str | None = "val", batch_size: int = 16,
                 num_workers: int = 0, train_limit: int | None = None, val_limit: int | None = 64,
                 sentence_splitter: str = "auto", seed: int = 0) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.sampler = CaptionSampler(captions, mode="weighted", sentence_splitter=sentence_splitter)

    def setup(self, stage: str | None = None) -> None:
        h = self.hparams
        self.train_set = CaptionPairs(h.store, h.train_split, self.sampler, h.instruction, h.train_limit)
        self.sampler.sentence_splitter = resolve_splitter(h.sentence_splitter, self.train_set.records.store.info)
        self.val_set = (CaptionPairs(h.store, h.val_split, self.sampler, h.instruction, h.val_limit)
                        if h.val_split else None)

    def train_dataloader(self) -> DataLoader:
        return example_loader(self.train_set, self.hparams.batch_size, True, self.hparams.num_workers,
                              self.hparams.seed)

    def val_dataloader(self) -> DataLoader | list:
        if self.val_set is None:
            return []
        return example_loader(self.val_set, self.hparams.batch_size, False, self.hparams.num_workers)
