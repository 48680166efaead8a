"""The predict DataModule of critic-rewrite: the images of a store split whose caption still has to be checked.

Which images those are depends on the run (the caption source, what an interrupted run already wrote), so
``CriticPredictLitModule`` calls :meth:`CriticPredictDataModule.select` in its ``setup``; items are ``(record,
image)`` or ``(record, reason)`` for an image that cannot be decoded. The store is opened lazily in each process.
"""

from __future__ import annotations

import os

import lightning as L
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from vlforge.common.errors import VLForgeError
from vlforge.common.records import ImageRecord
from vlforge.common.store import CaptionStore


class StoreImageDataset(Dataset):
    """The given image ids of a store with their decoded images (or the reason one cannot be decoded)."""

    def __init__(self, store_path: str | os.PathLike, ids: list[str]) -> None:
        self.store_path, self.ids = os.fspath(store_path), list(ids)
        self._store: CaptionStore | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[ImageRecord, Image.Image | str]:
        if self._store is None:
            self._store = CaptionStore(self.store_path, readonly=True)
        record = self._store.get(self.ids[i])
        try:
            return record, self._store.load_image(record)
        except VLForgeError as err:
            return record, str(err)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_store": None}


class CriticPredictDataModule(L.LightningDataModule):
    """The images of ``split`` (at most its first ``limit`` ids) of the store at ``store`` that the run selects."""

    def __init__(self, store: str, split: str = "test", batch_size: int = 8, num_workers: int = 0,
                 limit: int | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.store, self.split, self.limit = store, split, limit
        self.dataset: StoreImageDataset | None = None

    def select(self, ids: list[str]) -> None:
        self.dataset = StoreImageDataset(self.store, ids)

    def predict_dataloader(self) -> DataLoader:
        if self.dataset is None:
            raise VLForgeError("CriticPredictDataModule serves images only to a CriticPredictLitModule")
        return DataLoader(self.dataset, batch_size=self.hparams.batch_size, shuffle=False, collate_fn=list,
                          num_workers=self.hparams.num_workers)
