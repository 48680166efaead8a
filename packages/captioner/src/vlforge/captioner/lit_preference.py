"""CaptionerPreferenceLitModule: preference training with DPO + normalised SFT + BCO (ultra-detailed paper, Eq. 4).

Batches arrive as lists of pairs ``{"key", "image", "instruction", "chosen", "rejected"}``; chosen and rejected rows
go through the policy in one forward pass. The reference π0 is either

- ``"copy"``: a frozen copy of the starting policy (two models in memory; saved with checkpoints), or
- ``"precomputed"``: the starting policy's log-probs of every pair, computed once at the start of fit over the
  datamodule's training pairs (keyed by ``key``) so that only one model is in memory; the table goes into
  checkpoints, so a resumed run keeps the true π0 (both: :mod:`vlforge.common.lm.reference`).

δ (the BCO reward shift) is the running mean of all rewards of previous steps over all processes; it is saved in
and restored from checkpoints. Logged every step: chosen / rejected rewards, margin, preference accuracy, δ, the
three loss terms and ``collapse`` (1 while both rewards are falling, see ``RewardCollapseMonitor``). At each
validation the console's SampleOutputsCallback logs the policy's greedy captions of the first validation pairs'
images beside their chosen captions (``sample_outputs``).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from vlforge.captioner.captioner import Captioner
from vlforge.captioner.collapse import RewardCollapseMonitor
from vlforge.captioner.losses import preference_loss
from vlforge.common.errors import VLForgeError
from vlforge.common.lm.collate import SFTCollator
from vlforge.common.lm.generate import generate_for_examples
from vlforge.common.lm.lit_sft import SAMPLE_DECODING, model_inputs
from vlforge.common.lm.logprobs import sequence_logprobs
from vlforge.common.lm.reference import REFERENCE_MODES, ReferenceLogprobs, check_mode, frozen_copy, keep_eval
from vlforge.common.lm.running import RunningMean
from vlforge.common.optim import adamw_warmup_cosine

__all__ = ["REFERENCE_MODES", "CaptionerPreferenceLitModule"]


class CaptionerPreferenceLitModule(L.LightningModule):
    """Preference training of ``captioner`` (defaults: the paper's Table 5: β 0.1, a = (0.8, 1.0, 0.2), lr 5e-6,
    warm-up 0.1, cosine)."""

    def __init__(self, captioner: Captioner, reference: str = "copy", beta: float = 0.1,
                 weights: tuple[float, float, float] = (0.8, 1.0, 0.2), lr: float = 5e-6,
                 weight_decay: float = 0.0, warmup_ratio: float = 0.1, max_length: int | None = None,
                 collapse_window: int = 10, warmup_steps: int = 0,
                 betas: tuple[float, float] = (0.9, 0.999)) -> None:
        super().__init__()
        check_mode(reference)
        self.save_hyperparameters(ignore=["captioner"])
        self.model = captioner.model
        self.processor = captioner.processor
        self.collator = SFTCollator(captioner.processor, max_length=max_length)
        self.reference_model = frozen_copy(captioner.model) if reference == "copy" else None
        self.reference_table = ReferenceLogprobs()
        self.reward_shift = RunningMean()
        self.collapse_monitor = RewardCollapseMonitor(collapse_window)

    def train(self, mode: bool = True) -> CaptionerPreferenceLitModule:
        """Lightning switches the whole module to training mode; the reference copy stays in eval mode."""
        super().train(mode)
        keep_eval(self.reference_model)
        return self

    @property
    def reference_logps(self) -> dict[str, tuple[float, ...]]:
        """The precomputed (chosen, rejected) reference log-probs by pair key."""
        return self.reference_table.table

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if isinstance(batch, list):
            return {"keys": [str(e.get("key", "")) for e in batch], **self.collator(batch)}
        return batch

    def _pair_logps(self, model: torch.nn.Module, batch: dict[str, Any]) -> tuple[torch.Tensor, ...]:
        logits = model(**model_inputs(batch), use_cache=False).logits
        logps, counts = sequence_logprobs(logits, batch["labels"])
        chosen, rejected = logps.chunk(2)
        return chosen, rejected, counts.chunk(2)[0]

    def _reference(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        if self.reference_model is not None:
            with torch.no_grad():
                chosen, rejected, _ = self._pair_logps(self.reference_model, batch)
            return chosen, rejected
        table = self.reference_table.lookup(batch["keys"], self.device)
        return table[:, 0], table[:, 1]

    @torch.no_grad()
    def precompute_reference(self, dataloader: Any) -> None:
        """Store the current policy's (chosen, rejected) log-probs of every pair in ``dataloader`` as π0."""
        was_training = self.model.training
        self.model.eval()
        for examples in dataloader:
            batch = self.on_before_batch_transfer(examples, 0)
            batch = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
            chosen, rejected, _ = self._pair_logps(self.model, batch)
            self.reference_table.add(batch["keys"], torch.stack([chosen, rejected], dim=1))
        self.model.train(was_training)

    def on_fit_start(self) -> None:
        if self.hparams.reference == "precomputed" and not len(self.reference_table):
            datamodule = self.trainer.datamodule
            if datamodule is None:
                raise VLForgeError("reference='precomputed' needs a datamodule (or call precompute_reference first)")
            self.precompute_reference(datamodule.train_dataloader())

    def _step(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        chosen, rejected, chosen_lengths = self._pair_logps(self.model, batch)
        ref_chosen, ref_rejected = self._reference(batch)
        return preference_loss(chosen, rejected, ref_chosen, ref_rejected, chosen_lengths,
                               beta=self.hparams.beta, delta=self.reward_shift.value,
                               weights=tuple(self.hparams.weights))

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        out = self._step(batch)
        self._log_rewards("train", out, len(batch["keys"]))
        delta = self.reward_shift.value
        self.reward_shift.update(out["chosen_rewards"], out["rejected_rewards"])
        collapse = self.collapse_monitor.update(self.all_gather(out["chosen_rewards"]).mean().item(),
                                                self.all_gather(out["rejected_rewards"]).mean().item())
        self.log_dict({"train/delta": delta, "train/collapse": float(collapse)}, batch_size=len(batch["keys"]))
        return out["loss"]

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._log_rewards("val", self._step(batch), len(batch["keys"]))

    def sample_outputs(self, examples: list[dict[str, Any]]) -> list[str]:
        """The policy's greedy captions of fixed validation pairs' images (their instruction as the prompt)."""
        return generate_for_examples(self.model, self.processor, examples, SAMPLE_DECODING)

    def _log_rewards(self, stage: str, out: dict[str, torch.Tensor], batch_size: int) -> None:
        chosen, rejected = out["chosen_rewards"], out["rejected_rewards"]
        self.log_dict({f"{stage}/loss": out["loss"], f"{stage}/dpo": out["dpo"], f"{stage}/sft": out["sft"],
                       f"{stage}/bco": out["bco"], f"{stage}/rewards_chosen": chosen.mean(),
                       f"{stage}/rewards_rejected": rejected.mean(),
                       f"{stage}/rewards_margin": (chosen - rejected).mean(),
                       f"{stage}/rewards_accuracy": (chosen > rejected).float().mean()},
                      sync_dist=True, batch_size=batch_size, prog_bar=stage == "train")

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["reward_shift"] = self.reward_shift.state_dict()
        self.reference_table.save_to(checkpoint)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.reward_shift.load_state_dict(checkpoint.get("reward_shift", {"total": 0.0, "count": 0}))
        self.reference_table.load_from(checkpoint)

    def configure_optimizers(self) -> dict:
        return adamw_warmup_cosine(self.model.named_parameters(), self.hparams.lr,
                                   self.trainer.estimated_stepping_batches, weight_decay=self.hparams.weight_decay,
                                   warmup_ratio=self.hparams.warmup_ratio,
                                   warmup_steps=self.hparams.get("warmup_steps", 0),
                                   betas=tuple(self.hparams.get("betas", (0.9, 0.999))))
