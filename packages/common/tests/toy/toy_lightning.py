"""A tiny regression LitModule and DataModule for the framework tests (dropout and a scheduler exercise resume)."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import TensorDataset

from vlforge.common.resumable_loader import ResumableDataLoader


class ToyNet(nn.Module):
    """y = W2 · dropout(tanh(W1 x)): the network a ToyLitModule trains; loadable without Lightning."""

    def __init__(self, in_features: int = 8, hidden: int = 16, dropout: float = 0.0) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(in_features, hidden), nn.Tanh(), nn.Dropout(dropout), nn.Linear(hidden, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x).squeeze(-1)


class ToyLitModule(pl.LightningModule):
    """Mean squared error on ToyNet with AdamW and a step-decay scheduler."""

    def __init__(self, net: ToyNet, lr: float = 0.05, gamma: float = 0.9) -> None:
        super().__init__()
        self.net = net
        self.lr = lr
        self.gamma = gamma

    def _loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        return nn.functional.mse_loss(self.net(x), y)

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self._loss(batch), sync_dist=True)

    def test_step(self, batch, batch_idx):
        self.log("test_loss", self._loss(batch), sync_dist=True)

    def predict_step(self, batch, batch_idx):
        return self.net(batch[0])

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.lr)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=self.gamma)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


class ToyDataModule(pl.LightningDataModule):
    """y = sum(x) + noise on `num_samples` seeded Gaussian inputs; a shuffled, resumable training loader."""

    def __init__(
        self,
        num_samples: int = 64,
        in_features: int = 8,
        batch_size: int = 8,
        seed: int = 0,
        shuffle: bool = True,
    ) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        generator = torch.Generator().manual_seed(seed)
        x = torch.randn(num_samples, in_features, generator=generator)
        y = x.sum(-1) + 0.1 * torch.randn(num_samples, generator=generator)
        self.dataset = TensorDataset(x, y)

    def train_dataloader(self):
        return ResumableDataLoader(
            self.dataset, batch_size=self.batch_size, shuffle=self.shuffle, seed=self.seed
        )

    def val_dataloader(self):
        return torch.utils.data.DataLoader(self.dataset, batch_size=self.batch_size)

    test_dataloader = val_dataloader

    def predict_dataloader(self):
        return torch.utils.data.DataLoader(self.dataset, batch_size=self.batch_size)
