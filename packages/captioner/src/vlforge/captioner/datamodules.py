"""Lightning DataModules over the caption store; batches are lists of examples, collated by the LitModule."""

from __future__ import annotations

import lightning as L
from torch.utils.data import DataLoader, Dataset

from vlforge.captioner.data import PreferencePairDataset, SFTCaptionDataset
from vlforge.common.resumable_loader import ResumableDataLoader


def _loader(dataset: Dataset, batch_size: int, shuffle: bool, num_workers: int) -> DataLoader:
    """Training (shuffled): a loader whose epoch order is seeded and whose position is checkpointed, so that
    ``fit --ckpt_path last`` resumes exactly; evaluation: a plain one."""
    if shuffle:
        return ResumableDataLoader(dataset, batch_size, shuffle=True, num_workers=num_workers, collate_fn=list,
                                   persistent_workers=num_workers > 0)
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=list,
                      persistent_workers=num_workers > 0)


class CaptionerSFTDataModule(L.LightningDataModule):
    """SFT examples: ``train_split`` (ShapesWorld's seed split) for training, ``val_split`` for validation;
    ``with_images: false`` for a text-only model."""

    def __init__(self, store: str, train_split: str = "seed", val_split: str | None = "val",
                 targets: dict[str, str] | None = None, batch_size: int = 8, num_workers: int = 0,
                 train_limit: int | None = None, val_limit: int | None = 64, with_images: bool = True) -> None:
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage: str | None = None) -> None:
        h = self.hparams
        images = h.get("with_images", True)
        self.train_set = SFTCaptionDataset(h.store, h.train_split, h.targets, limit=h.train_limit,
                                           with_images=images)
        self.val_set = (SFTCaptionDataset(h.store, h.val_split, h.targets, limit=h.val_limit, with_images=images)
                        if h.val_split else None)

    def train_dataloader(self) -> DataLoader:
        return _loader(self.train_set, self.hparams.batch_size, True, self.hparams.num_workers)

    def val_dataloader(self) -> DataLoader | list:
        if self.val_set is None:
            return []
        return _loader(self.val_set, self.hparams.batch_size, False, self.hparams.num_workers)


class CaptionerPreferenceDataModule(L.LightningDataModule):
    """Preference pairs of ``train_split`` (ShapesWorld's pref split); see ``PreferencePairDataset``."""

    def __init__(self, store: str, train_split: str = "pref", chosen_kind: str = "descriptive",
                 rejected: str = "negative", score_key: str = "chair_i", batch_size: int = 8,
                 num_workers: int = 0, train_limit: int | None = None, seed: int = 0,
                 score_above: float | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage: str | None = None) -> None:
        h = self.hparams
        self.train_set = PreferencePairDataset(h.store, h.train_split, h.chosen_kind, h.rejected, h.score_key,
                                               seed=h.seed, limit=h.train_limit, score_above=h.score_above)

    def train_dataloader(self) -> DataLoader:
        return _loader(self.train_set, self.hparams.batch_size, True, self.hparams.num_workers)
