"""SFTLitModule: supervised fine-tuning of any generative model (image-text-to-text or text-only), loss on response
tokens only.

Batches arrive as lists of plain dicts ``{image?, instruction, response}`` and are collated here
(:class:`~vlforge.common.lm.collate.SFTCollator`; the processor belongs to the model), so data modules stay
model-agnostic. The loss is the mean negative log-likelihood over all response tokens of the batch:

    L = − Σ_i Σ_t m_it log π(y_it | y_i<t, x_i) / Σ_i Σ_t m_it

Logged: ``train/loss``, ``val/loss``, and the collator's counts of truncated and lost responses
(``train/responses_truncated``, ``train/responses_lost``) so that a ``max_length`` that cuts responses is seen.
The optimizer is :func:`vlforge.common.optim.adamw_warmup_cosine` (``lr``, ``weight_decay``, ``warmup_ratio`` or
``warmup_steps``, ``betas``: the argument names of every vlforge LitModule) with a learning rate per part
(``part_lr: {vision_tower: 2e-6}``) over the parts of the model's family.
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from vlforge.common.lm.collate import SFTCollator
from vlforge.common.lm.generate import generate_for_examples
from vlforge.common.lm.logprobs import sequence_logprobs
from vlforge.common.lm.model import GenerativeModel
from vlforge.common.optim import adamw_warmup_cosine

MODEL_INPUT_KEYS_EXCLUDED = ("labels",)
SAMPLE_DECODING = {"max_new_tokens": 48, "num_beams": 1, "do_sample": False}


def model_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Everything the model's forward takes (labels are scored outside the model)."""
    return {k: v for k, v in batch.items() if k not in MODEL_INPUT_KEYS_EXCLUDED and isinstance(v, torch.Tensor)}


class SFTLitModule(L.LightningModule):
    """SFT of ``model`` (defaults: the ultra-detailed paper's Table 4: lr 1e-5, warm-up 0.03, cosine)."""

    def __init__(self, model: GenerativeModel, lr: float = 1e-5, weight_decay: float = 0.0,
                 warmup_ratio: float = 0.03, max_length: int | None = None, prompt_style: str = "chat",
                 part_lr: dict[str, float] | None = None, warmup_steps: int = 0,
                 betas: tuple[float, float] = (0.9, 0.999)) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["model", "captioner"])
        self.model = model.model
        self.processor = model.processor
        self.family = model.family
        self.collator = SFTCollator(model.processor, max_length=max_length, prompt_style=prompt_style)

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        return self.collator(batch) if isinstance(batch, list) else batch

    def response_nll(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = self.model(**model_inputs(batch), use_cache=False).logits
        logps, counts = sequence_logprobs(logits, batch["labels"])
        return -logps.sum() / counts.sum().clamp(min=1)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.response_nll(batch)
        size = batch["input_ids"].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=size)
        self.log_dict({"train/responses_truncated": float(self.collator.counts["truncated"]),
                       "train/responses_lost": float(self.collator.counts["lost"])}, batch_size=size)
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self.log("val/loss", self.response_nll(batch), sync_dist=True, batch_size=batch["input_ids"].shape[0])

    def sample_outputs(self, examples: list[dict[str, Any]]) -> list[str]:
        """Greedy outputs for fixed validation examples (with and without an image; a multi-turn example comes as
        its first turn), logged at each validation by the console's `vlforge.common.sample_outputs.
        SampleOutputsCallback`."""
        return generate_for_examples(self.model, self.processor, examples, SAMPLE_DECODING,
                                     self.hparams.get("prompt_style", "chat"))

    def configure_optimizers(self) -> dict:
        return adamw_warmup_cosine(self.model.named_parameters(), self.hparams.lr,
                                   self.trainer.estimated_stepping_batches, weight_decay=self.hparams.weight_decay,
                                   warmup_ratio=self.hparams.warmup_ratio,
                                   warmup_steps=self.hparams.get("warmup_steps", 0),
                                   betas=tuple(self.hparams.get("betas", (0.9, 0.999))),
                                   part_of=self.family.part_of, part_lr=self.hparams.get("part_lr"))
