"""The predict DataModule of caption generation: the images of a store split that a captioner still has to
caption.

Which images those are depends on the captioner, so ``CaptionerPredictLitModule`` calls :meth:`select` in its
``setup`` (after leftover shards of an interrupted run are merged); ``predict_dataloader`` serves them in
sorted id order and Lightning's predict sampler gives every rank a disjoint part. Items are ``(record,
PendingImage)`` or ``(record, reason)`` for an image that cannot be captioned (undecodable, no alt-text for
alt-text fusion); the store is opened lazily in each process or worker.
"""

from __future__ import annotations

import os

import lightning as L
from torch.utils.data import DataLoader, Dataset

from vlforge.captioner.formats import CaptionFormat
from vlforge.captioner.generation.store_io import PendingImage, prepare
from vlforge.common.errors import VLForgeError
from vlforge.common.records import ImageRecord
from vlforge.common.store import CaptionStore


class PendingImageDataset(Dataset):
    """The given image ids of a store, each prepared for captioning in ``fmt``."""

    def __init__(self, store_path: str | os.PathLike, ids: list[str], fmt: CaptionFormat) -> None:
        self.store_path, self.ids, self.fmt = os.fspath(store_path), list(ids), fmt
        self._store: CaptionStore | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[ImageRecord, PendingImage | str]:
        if self._store is None:
            self._store = CaptionStore(self.store_path, readonly=True)
        record = self._store.get(self.ids[i])
        return record, prepare(self._store, record, self.fmt)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_store": None}


class CaptionGenerationDataModule(L.LightningDataModule):
    """The pending images of ``split`` (at most its first ``limit`` ids) of the store at ``store``."""

    def __init__(
        self,
        store: str,
        split: str = "pool",
        batch_size: int = 8,
        num_workers: int = 0,
        limit: int | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.store, self.split, self.limit = store, split, limit
        self.dataset: PendingImageDataset | None = None

    def select(self, ids: list[str], fmt: CaptionFormat) -> None:
        """Serve exactly these image ids, prepared for ``fmt``."""
        self.dataset = PendingImageDataset(self.store, ids, fmt)

    def predict_dataloader(self) -> DataLoader:
        if self.dataset is None:
            raise VLForgeError(
                "CaptionGenerationDataModule serves images only to a CaptionerPredictLitModule "
                "(it selects the images its captioner still has to caption)"
            )
        return DataLoader(
            self.dataset,
            batch_size=self.hparams.batch_size,
            shuffle=False,
            collate_fn=list,
            num_workers=self.hparams.num_workers,
        )
