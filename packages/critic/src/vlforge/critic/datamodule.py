"""Data modules for ``vlforge.common.lm.lit_sft.SFTLitModule`` (batches are lists of plain dicts, collated by the
LitModule): ``CriticDataModule`` (critic SFT examples of ``vlforge.critic.data``), ``DecompositionDataModule``
(gt dense caption -> atomic facts, text only) and ``RewriteDataModule`` (corrupted caption + critiques -> clean
caption, text only)."""

from __future__ import annotations

import lightning as L
from torch.utils.data import DataLoader

from vlforge.common.resumable_loader import ResumableDataLoader
from vlforge.critic.data import CriticSFTDataset, DecompositionSFTDataset, RewriteSFTDataset


class _PlainDictDataModule(L.LightningDataModule):
    """Loaders over ``train_set`` / ``val_set`` (set by ``setup``) with the ``batch_size`` and ``num_workers``
    hyperparameters; batches stay lists of dicts."""

    def train_dataloader(self) -> DataLoader:
        h = self.hparams
        return ResumableDataLoader(self.train_set, h.batch_size, shuffle=True, num_workers=h.num_workers,
                                   collate_fn=list, persistent_workers=h.num_workers > 0)

    def val_dataloader(self) -> DataLoader | list:
        if self.val_set is None:
            return []
        h = self.hparams
        return DataLoader(self.val_set, batch_size=h.batch_size, shuffle=False, num_workers=h.num_workers,
                          collate_fn=list, persistent_workers=h.num_workers > 0)


class CriticDataModule(_PlainDictDataModule):
    """Training rows from ``train_files`` (LLaVA JSON) and/or ``store``'s ``train_split``; validation rows from
    ``val_files`` and/or ``store``'s ``val_split``. ``instruction``: "fig14" (the paper's prompt) or "short" (tiny
    models); ``critiques`` / ``verdict_only``: which examples each row gives; ``describe_first``: the store rows'
    critiques open with the image's description; ``observe_first``: each check of the store rows' critiques states
    what the image shows before it judges; ``captioner_sources``: store rows also from these caption sources'
    sentences (a trained captioner's, judged against the scene graph)."""

    def __init__(self, store: str | None = None, train_split: str | None = "critic", val_split: str | None = "val",
                 train_files: list[str] | None = None, val_files: list[str] | None = None,
                 image_folder: str | None = None, instruction: str = "fig14", critiques: bool = True,
                 verdict_only: bool = True, batch_size: int = 8, num_workers: int = 0,
                 train_limit: int | None = None, val_limit: int | None = 16, seed: int = 0,
                 describe_first: bool = False, observe_first: bool = False,
                 captioner_sources: list[str] | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()

    def _dataset(self, files: list[str] | None, split: str | None, limit: int | None) -> CriticSFTDataset:
        h = self.hparams
        return CriticSFTDataset(files, h.store if split else None, split, h.image_folder, h.instruction, h.critiques,
                                h.verdict_only, limit, h.seed, h.describe_first, h.observe_first,
                                h.captioner_sources)

    def setup(self, stage: str | None = None) -> None:
        h = self.hparams
        self.train_set = self._dataset(h.train_files, h.train_split, h.train_limit)
        has_val = h.val_files or (h.store and h.val_split)
        self.val_set = self._dataset(h.val_files, h.val_split, h.val_limit) if has_val else None



class DecompositionDataModule(_PlainDictDataModule):
    """Decomposition examples of ``store``'s ``train_split`` and ``val_split`` (``None``: no validation), asked with
    the decomposition prompt named ``prompt`` ("short" for tiny models, "fig12" the paper's)."""

    def __init__(self, store: str, train_split: str = "pool", val_split: str | None = "val", prompt: str = "short",
                 batch_size: int = 8, num_workers: int = 0, train_limit: int | None = None,
                 val_limit: int | None = 16) -> None:
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage: str | None = None) -> None:
        h = self.hparams
        self.train_set = DecompositionSFTDataset(h.store, h.train_split, h.prompt, h.train_limit)
        self.val_set = DecompositionSFTDataset(h.store, h.val_split, h.prompt, h.val_limit) if h.val_split else None


class RewriteDataModule(_PlainDictDataModule):
    """Rewrite examples (``RewriteSFTDataset``) of ``store``'s ``train_split`` and ``val_split`` (``None``: no
    validation), asked with the rewrite prompt named ``prompt`` ("short" for tiny models, "fig15" the paper's);
    ``rate``: the probability that each colour and shape word of the gt dense caption is swapped; ``scope``:
    "caption" (whole-caption rewrites) or "sentence" (one example per corrupted sentence)."""

    def __init__(self, store: str, train_split: str = "pool", val_split: str | None = "val", prompt: str = "short",
                 critiqued: str = "inconsistent", rate: float = 0.15, seed: int = 0, batch_size: int = 8,
                 num_workers: int = 0, train_limit: int | None = None, val_limit: int | None = 16,
                 scope: str = "caption") -> None:
        super().__init__()
        self.save_hyperparameters()

    def _dataset(self, split: str, limit: int | None) -> RewriteSFTDataset:
        h = self.hparams
        return RewriteSFTDataset(h.store, split, h.prompt, h.critiqued, h.rate, h.seed, limit, h.scope)

    def setup(self, stage: str | None = None) -> None:
        h = self.hparams
        self.train_set = self._dataset(h.train_split, h.train_limit)
        self.val_set = self._dataset(h.val_split, h.val_limit) if h.val_split else None
