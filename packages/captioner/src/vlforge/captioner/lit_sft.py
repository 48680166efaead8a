"""CaptionerSFTLitModule: supervised fine-tuning of an image-text-to-text captioner, loss on response tokens only.

Batches arrive as lists of examples ``{"image", "instruction", "response"}`` and are collated here (the processor
belongs to the model), so the data modules stay model-agnostic. The loss is the mean negative log-likelihood over
all response tokens of the batch.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from vlforge.captioner.captioner import Captioner
from vlforge.captioner.collate import CaptionCollator
from vlforge.captioner.generation.batched import generate_captions
from vlforge.captioner.logprobs import sequence_logprobs
from vlforge.captioner.optim import adamw_warmup_cosine

MODEL_INPUT_KEYS_EXCLUDED = ("labels",)
SAMPLE_DECODING = {"max_new_tokens": 48, "num_beams": 1, "do_sample": False}


def model_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Everything the model's forward takes (labels are scored outside the model)."""
    return {k: v for k, v in batch.items() if k not in MODEL_INPUT_KEYS_EXCLUDED and isinstance(v, torch.Tensor)}


class CaptionerSFTLitModule(L.LightningModule):
    """SFT of ``captioner`` (defaults: the ultra-detailed paper's Table 4: lr 1e-5, warm-up 0.03, cosine)."""

    def __init__(self, captioner: Captioner, lr: float = 1e-5, weight_decay: float = 0.0,
                 warmup_ratio: float = 0.03, max_length: int | None = None) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["captioner"])
        self.model = captioner.model
        self.processor = captioner.processor
        self.collator = CaptionCollator(captioner.processor, max_length=max_length)

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        return self.collator(batch) if isinstance(batch, list) else batch

    def response_nll(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = self.model(**model_inputs(batch), use_cache=False).logits
        logps, counts = sequence_logprobs(logits, batch["labels"])
        return -logps.sum() / counts.sum().clamp(min=1)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.response_nll(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["input_ids"].shape[0])
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self.log("val/loss", self.response_nll(batch), sync_dist=True, batch_size=batch["input_ids"].shape[0])

    def sample_outputs(self, examples: list[dict[str, Any]]) -> list[str]:
        """Greedy captions of fixed validation examples, logged at each validation by the console's
        `vlforge.common.sample_outputs.SampleOutputsCallback`."""
        return generate_captions(self.model, self.processor, [e["image"] for e in examples],
                                 [e["instruction"] for e in examples], SAMPLE_DECODING)

    def configure_optimizers(self) -> dict:
        return adamw_warmup_cosine(self.parameters(), self.hparams.lr, self.hparams.weight_decay,
                                   self.hparams.warmup_ratio, self.trainer.estimated_stepping_batches)
