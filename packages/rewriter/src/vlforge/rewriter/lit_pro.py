"""RewriterPROLitModule: the rewriter's second training step, PRO's listwise ranking (query-rewriter paper §3.3,
Eq. 3; :func:`vlforge.rewriter.losses.pro_loss`), starting from the SFT weights (``GenerativeModel(weights=...)``).

Batches arrive as lists of ``{key, instruction, responses: [n], rewards: [n]}`` (:class:`RewriterPRODataModule`);
the n responses of every query go through the policy in one forward pass (``SFTCollator`` with k = n responses:
row j·B + i is response j of query i). The loss takes their summed log-probs and token counts [B, n] and the
rewards ``reward_scale``·retriever score [B, n]. Eq. 3 compares the policy's own length-normalised log-probs
only, so PRO needs no reference model (the SFT policy enters as the starting point; ``sft_weight`` keeps the
best rewrite's likelihood up, as the PRO paper's SFT term does).

``reward_scale``: D_PRO's best-minus-worst retriever-score gap has a median of about 0.2 (docs/results.md), and
the ranking logits are s_i·(r_j − r_i) with per-token log-probs s of about −1 to −3 nats, so at scale 1 every
logit is a few tenths and the softmax over candidates is nearly flat; scale 10 makes a typical gap 2 and the
ranking decisive. Logged: ``loss``, ``ranking``, ``sft`` and ``best_first`` (share of queries whose best
rewrite has the policy's highest s).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from vlforge.common.lm.collate import SFTCollator
from vlforge.common.lm.generate import generate_texts
from vlforge.common.lm.lit_sft import SAMPLE_DECODING, model_inputs
from vlforge.common.lm.logprobs import sequence_logprobs
from vlforge.common.lm.model import GenerativeModel
from vlforge.common.optim import adamw_warmup_cosine
from vlforge.rewriter.losses import pro_loss


class RewriterPROLitModule(L.LightningModule):
    """PRO training of ``model`` on n ranked rewrites per query."""

    def __init__(self, model: GenerativeModel, reward_scale: float = 10.0, sft_weight: float = 1.0,
                 lr: float = 1e-4, weight_decay: float = 0.0, warmup_ratio: float = 0.05, warmup_steps: int = 0,
                 max_length: int | None = None, prompt_style: str = "chat",
                 betas: tuple[float, float] = (0.9, 0.999)) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["model"])
        self.model = model.model
        self.processor = model.processor
        self.family = model.family
        self.collator = SFTCollator(model.processor, max_length=max_length, prompt_style=prompt_style)

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if isinstance(batch, list):
            rewards = torch.tensor([e["rewards"] for e in batch], dtype=torch.float32)
            return {"keys": [e["key"] for e in batch], "rewards": rewards, **self.collator(batch)}
        return batch

    def candidate_logps(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed log-probs and token counts of the candidates, both [B, n]."""
        logits = self.model(**model_inputs(batch), use_cache=False).logits
        logps, counts = sequence_logprobs(logits, batch["labels"])
        queries, n = batch["rewards"].shape
        return logps.view(n, queries).T, counts.view(n, queries).T

    def _step(self, stage: str, batch: dict[str, Any]) -> torch.Tensor:
        logps, lengths = self.candidate_logps(batch)
        rewards = self.hparams.reward_scale * batch["rewards"]
        out = pro_loss(logps, lengths, rewards, sft_weight=self.hparams.sft_weight)
        normalised = logps / lengths.clamp(min=1)
        best_first = (normalised.argmax(dim=1) == rewards.argmax(dim=1)).float().mean()
        self.log_dict({f"{stage}/loss": out["loss"], f"{stage}/ranking": out["ranking"], f"{stage}/sft": out["sft"],
                       f"{stage}/best_first": best_first}, prog_bar=stage == "train", sync_dist=stage == "val",
                      batch_size=len(batch["keys"]))
        return out["loss"]

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        return self._step("train", batch)

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._step("val", batch)

    def sample_outputs(self, examples: list[dict[str, Any]]) -> list[str]:
        """Greedy rewrites of fixed validation queries (the console's SampleOutputsCallback logs them)."""
        return generate_texts(self.model, self.processor, [e["instruction"] for e in examples], None,
                              SAMPLE_DECODING, prompt_style=self.hparams.prompt_style)

    def configure_optimizers(self) -> dict:
        return adamw_warmup_cosine(self.model.named_parameters(), self.hparams.lr,
                                   self.trainer.estimated_stepping_batches, weight_decay=self.hparams.weight_decay,
                                   warmup_ratio=self.hparams.warmup_ratio, warmup_steps=self.hparams.warmup_steps,
                                   betas=tuple(self.hparams.betas), part_of=self.family.part_of)
