"""Lightning DataModules of the rewriter's training steps over D_SFT / D_PRO files (``make-data``'s JSONL); batches
are lists of plain dicts (:mod:`vlforge.rewriter.examples`), collated by the LitModule.

- :class:`RewriterSFTDataModule`: D_SFT rows → ``{key, instruction, response}``;
- :class:`RewriterPRODataModule`: D_PRO rows with at least ``num_candidates`` rewrites → ``{..., responses,
  rewards}`` (a row with fewer is skipped and counted with its query id in ``skipped``);
- :class:`RewriterQueryDataModule`: the queries of any pair file → ``{key, instruction, query, image_id}`` (PPO).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import lightning as L
from torch.utils.data import DataLoader

from vlforge.common.errors import VLForgeError
from vlforge.common.resumable_loader import ResumableDataLoader
from vlforge.rewriter.examples import INSTRUCTION, pro_example, query_example, sft_example
from vlforge.rewriter.pair_files import read_query_pairs
from vlforge.rewriter.query_pairs import QueryPairRow

log = logging.getLogger(__name__)


def _train_loader(examples: list[dict[str, Any]], batch_size: int) -> DataLoader:
    """Seeded order, position saved in checkpoints (``fit --ckpt_path last`` resumes exactly)."""
    return ResumableDataLoader(examples, batch_size, shuffle=True, collate_fn=list)


def _eval_loader(examples: list[dict[str, Any]], batch_size: int) -> DataLoader:
    return DataLoader(examples, batch_size=batch_size, shuffle=False, collate_fn=list)


class _PairFileDataModule(L.LightningDataModule):
    """Examples of ``train_file`` (and ``val_file``) made by :meth:`example`; ``limit`` keeps the first N rows."""

    def __init__(self, train_file: str, val_file: str | None = None, batch_size: int = 16,
                 instruction: str = INSTRUCTION, train_limit: int | None = None, val_limit: int | None = 64) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.skipped: list[tuple[str, str]] = []

    def example(self, row: QueryPairRow) -> dict[str, Any] | None:
        raise NotImplementedError

    def _read(self, path: str | os.PathLike, limit: int | None) -> list[dict[str, Any]]:
        examples = []
        for row in read_query_pairs(path)[:limit]:
            example = self.example(row)
            if example is not None:
                examples.append(example)
        return examples

    def setup(self, stage: str | None = None) -> None:
        h = self.hparams
        self.train_set = self._read(h.train_file, h.train_limit)
        self.val_set = self._read(h.val_file, h.val_limit) if h.val_file else []
        if self.skipped:
            log.warning("%d pair rows skipped (first: query %s, %s)", len(self.skipped), *self.skipped[0])
        if stage in (None, "fit") and not self.train_set:
            why = f"; {len(self.skipped)} skipped, first: query {self.skipped[0][0]}, {self.skipped[0][1]}" \
                if self.skipped else ""
            raise VLForgeError(f"{h.train_file}: no training example{why}")

    def train_dataloader(self) -> DataLoader:
        return _train_loader(self.train_set, self.hparams.batch_size)

    def val_dataloader(self) -> DataLoader | list:
        return _eval_loader(self.val_set, self.hparams.batch_size) if self.val_set else []


class RewriterSFTDataModule(_PairFileDataModule):
    """D_SFT: each query with its best rewrite (the SFT step, Eq. 1)."""

    def example(self, row: QueryPairRow) -> dict[str, Any] | None:
        return sft_example(row, self.hparams.instruction)


class RewriterPRODataModule(_PairFileDataModule):
    """D_PRO: each query with ``num_candidates`` rewrites ranked by retriever score (the PRO step, Eq. 3)."""

    def __init__(self, train_file: str, val_file: str | None = None, num_candidates: int = 4, batch_size: int = 8,
                 instruction: str = INSTRUCTION, train_limit: int | None = None, val_limit: int | None = 64) -> None:
        super().__init__(train_file, val_file, batch_size, instruction, train_limit, val_limit)

    def example(self, row: QueryPairRow) -> dict[str, Any] | None:
        n = self.hparams.num_candidates
        if len(row.candidates) < n:
            self.skipped.append((row.query_id, f"{len(row.candidates)} candidates < num_candidates {n}"))
            return None
        return pro_example(row, n, self.hparams.instruction)


class RewriterQueryDataModule(_PairFileDataModule):
    """The queries of a pair file with their right image (the PPO step's prompts, Eqs. 4-5)."""

    def example(self, row: QueryPairRow) -> dict[str, Any] | None:
        return query_example(row, self.hparams.instruction)

