"""Test helper of test_ddp_fit.py (imported by the console script's processes through PYTHONPATH): a contrastive
DataModule whose batches are named store splits, one split per rank and step, so that a 2-process DDP fit and a
single-process fit see the same global batches.

Under DDP rank r's step-k batch is split ``steps[k][r]``; in one process the step-k batch is every split of
``steps[k]`` in rank order (the order DDP's gathers concatenate the ranks' rows in). Items go through the shipped
:class:`vlforge.vlm.data.ContrastivePairs` and :func:`vlforge.vlm.data.collate_pairs` (undecodable images are
skipped and counted). Fit with ``--trainer.use_distributed_sampler false``: the batches are already per rank."""

from __future__ import annotations

from torch.utils.data import ConcatDataset, DataLoader

from vlforge.common.store import CaptionDataset
from vlforge.vlm.data import ContrastiveDataModule, ContrastivePairs, collate_pairs


class RankBatches(ContrastiveDataModule):
    def __init__(self, store: str, steps: list[list[str]], negatives_per_image: int = 2, image_size: int = 32) -> None:
        super().__init__(store, train_captions=[{"source": "gt", "kind": "short"}], image_size=image_size,
                         negatives_per_image=negatives_per_image, val_split=None, test_split=None)
        self.steps = steps

    def train_dataloader(self) -> DataLoader:
        world, rank = self.trainer.world_size, self.trainer.global_rank
        datasets, batches, offset = [], [], 0
        for splits in self.steps:
            indices = []
            for split in ([splits[rank]] if world > 1 else splits):
                records = CaptionDataset(self.hparams.store, split=split, transform=self.train_transform)
                datasets.append(ContrastivePairs(records, self.sampler, self.hparams.negatives_per_image))
                indices += range(offset, offset + len(datasets[-1]))
                offset += len(datasets[-1])
            batches.append(indices)
        return DataLoader(ConcatDataset(datasets), batch_sampler=batches, collate_fn=collate_pairs)
