"""The predict DataModule of query rewriting: the records of a store split whose queries a rewriter still has to
rewrite.

Which records those are depends on the rewriter, so ``RewriterPredictLitModule`` calls :meth:`select` in its
``setup`` (after leftover shards of an interrupted run are merged); ``predict_dataloader`` serves them in sorted id
order and Lightning's predict sampler gives every rank a disjoint part. Items are the records (no pixels: a
rewriter reads text only); the store is opened lazily in each process or worker.
"""

from __future__ import annotations

import os

import lightning as L
from torch.utils.data import DataLoader, Dataset

from vlforge.common.errors import VLForgeError
from vlforge.common.records import ImageRecord
from vlforge.common.store import CaptionStore


class RecordsById(Dataset):
    """The given image ids of a store, as records."""

    def __init__(self, store_path: str | os.PathLike, ids: list[str]) -> None:
        self.store_path, self.ids = os.fspath(store_path), list(ids)
        self._store: CaptionStore | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> ImageRecord:
        if self._store is None:
            self._store = CaptionStore(self.store_path, readonly=True)
        return self._store.get(self.ids[i])

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_store": None}


class QueryRewriteDataModule(L.LightningDataModule):
    """The pending records of ``split`` (at most its first ``limit`` ids) of the store at ``store``."""

    def __init__(self, store: str, split: str = "test", batch_size: int = 16, num_workers: int = 0,
                 limit: int | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.store, self.split, self.limit = store, split, limit
        self.dataset: RecordsById | None = None

    def select(self, ids: list[str]) -> None:
        """Serve exactly these image ids."""
        self.dataset = RecordsById(self.store, ids)

    def predict_dataloader(self) -> DataLoader:
        if self.dataset is None:
            raise VLForgeError("QueryRewriteDataModule serves records only to a RewriterPredictLitModule "
                               "(it selects the records its rewriter still has to rewrite)")
        return DataLoader(self.dataset, batch_size=self.hparams.batch_size, shuffle=False, collate_fn=list,
                          num_workers=self.hparams.num_workers)
