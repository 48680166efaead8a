"""RewriterPPOLitModule: the rewriter's third training step, PPO with the retriever's reward and an adaptive KL
penalty (query-rewriter paper §3.4, Eqs. 4-5), starting from the PRO weights (``GenerativeModel(weights=...)``).

One training step, on a batch of queries ``{key, instruction, query, image_id}`` (:class:`RewriterQueryDataModule`):

1. rollouts: one sampled rewrite per query through ``vlforge.common.lm`` generation (ids + per-token log-probs of
   the behaviour policy; temperature 1 and no top-k / top-p, so the sampling distribution is the policy's own);
2. reward r(x, y) = 20·(s_clip(y, v_x) − s_clip(x, v_x)) from the frozen retriever (:class:`RetrievalReward`);
   an empty rewrite, one without EOS within ``max_new_tokens`` (over-length) or a NaN reward is skipped and
   counted with its query id (a warning names it; counts in ``skipped`` and in checkpoints). With
   ``degenerate_reward`` set, an empty or over-length rewrite is counted the same way but trained on with that
   reward instead of skipped (TRL's ``missing_eos_penalty`` idea): skipped, they take no gradient, and a long run
   drifts into them;
3. per-token rewards −β·(log π − log π_ref) against the frozen PRO policy (the starting weights) plus r(x, y) on
   the last rewrite token (Eq. 5), values from the value head, GAE (γ, λ), advantages whitened;
4. ``ppo_epochs`` passes over the rollouts in ``mini_batches`` shuffled parts, each an optimizer step on PPO's
   clipped policy loss + ``value_coef``·clipped value loss (manual optimisation; every step counts towards
   ``trainer.max_steps``);
5. β ← AdaptiveKLController.update(mean sequence KL over all processes, n_steps = rollouts of all processes).

The controller's β, the value head (a submodule), the optimizer and scheduler states and the skip counts by reason
(rank 0's) are saved
in checkpoints and restored on ``fit --ckpt_path``. Under DDP every process rolls out its own queries; a skipped
rollout keeps its row with an empty mask, so every process makes the same number of backward passes. Logged per
step (over all processes): reward, sequence KL, β, rollouts kept and skipped, policy / value losses, clip
fractions, rewrite length and, with
``track_similarity``, the MiniLM similarity of rewrites to their queries (reward hacking shows as a fall).

With validation queries (the datamodule's ``val_file``), each validation rewrites them greedily and logs their mean
reward ``val/reward`` (Eq. 4; NaN rewards left out), and the console's SampleOutputsCallback logs the greedy
rewrites of the first few (``sample_outputs``).
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import lightning as L
import torch

from vlforge.common.lm.generate import generate_sequences, generate_texts
from vlforge.common.lm.logprobs import token_logprobs
from vlforge.common.lm.model import GenerativeModel
from vlforge.common.lm.prompts import tokenizer_of
from vlforge.common.lm.reference import frozen_copy, keep_eval
from vlforge.common.optim import adamw_warmup_cosine
from vlforge.rewriter.kl import AdaptiveKLController
from vlforge.rewriter.ppo import gae, kl_penalised_rewards, policy_loss, sequence_kl, value_loss, whiten
from vlforge.rewriter.reward import RetrievalReward
from vlforge.rewriter.rollout import EMPTY, OVER_LENGTH, PackedRollouts, pack_rollouts, screen
from vlforge.rewriter.value_head import ValueHead

log = logging.getLogger(__name__)
KL_KEY, SKIPPED_KEY = "kl_controller", "ppo_skipped"


class RewriterPPOLitModule(L.LightningModule):
    """PPO of ``model`` against ``reward`` (defaults: Ziegler et al.'s adaptive KL, PPO's ε = 0.2, γ = 1, λ = 0.95)."""

    def __init__(self, model: GenerativeModel, reward: RetrievalReward, init_kl_coef: float = 0.2,
                 kl_target: float = 1.0, kl_horizon: int = 10000, ppo_epochs: int = 4, mini_batches: int = 1,
                 clip_range: float = 0.2, value_clip_range: float = 0.2, value_coef: float = 0.1,
                 gamma: float = 1.0, lam: float = 0.95, max_new_tokens: int = 32, max_grad_norm: float = 1.0,
                 lr: float = 1e-5, weight_decay: float = 0.0, warmup_steps: int = 0,
                 betas: tuple[float, float] = (0.9, 0.95), prompt_style: str = "chat",
                 track_similarity: bool = False, degenerate_reward: float | None = None) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["model", "reward"])
        self.automatic_optimization = False
        self.model = model.model
        self.processor = model.processor
        self.family = model.family
        self.tokenizer = tokenizer_of(model.processor)
        self.value_head = ValueHead(self.model.get_input_embeddings().embedding_dim)
        self.reference_model = frozen_copy(model.model)
        self.reward = reward
        self.kl_controller = AdaptiveKLController(init_kl_coef, kl_target, kl_horizon)
        self.skipped: Counter[str] = Counter()
        self.similarity = None

    def train(self, mode: bool = True) -> RewriterPPOLitModule:
        super().train(mode)
        keep_eval(self.reference_model)
        return self

    def on_fit_start(self) -> None:
        """Load the retriever (rank 0 first: it may write the image-feature cache) and MiniLM."""
        strategy = self.trainer.strategy
        if self.global_rank == 0:
            self.reward.load(self.device)
        strategy.barrier()
        self.reward.load(self.device)
        if self.hparams.track_similarity and self.similarity is None:
            from vlforge.rewriter.similarity import SentenceSimilarity

            self.similarity = SentenceSimilarity()

    def forward_rollouts(self, model: torch.nn.Module, packed: PackedRollouts,
                         with_values: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per-token log-probs [B, T−1] of the packed rollouts under ``model`` and, ``with_values``, the value
        head's estimates [B, T−1] (the value of the state before each token). The value head reads the hidden
        states without back-propagating into the policy: with rewards on the scale of Eq. 4's factor 20, a shared
        body let the value loss move the policy (per-token KL to π_old of several nats within one batch)."""
        out = model(input_ids=packed.input_ids, attention_mask=packed.attention_mask, use_cache=False,
                    output_hidden_states=with_values)
        logps, _ = token_logprobs(out.logits, packed.labels)
        values = self.value_head(out.hidden_states[-1][:, :-1].detach()) if with_values else None
        return logps, values

    def rollout(self, batch: list[dict[str, Any]]) -> tuple[PackedRollouts, torch.Tensor, list[str]]:
        """Generate one rewrite per query, reward it and pack the rollouts; returns (packed, rewards [B], texts)."""
        h = self.hparams
        decoding = {"max_new_tokens": h.max_new_tokens, "do_sample": True, "temperature": 1.0, "top_k": 0,
                    "top_p": 1.0}
        sequences = generate_sequences(self.model, self.processor, [e["instruction"] for e in batch],
                                       decoding=decoding, batch_size=len(batch), prompt_style=h.prompt_style)
        texts = [s.text for s in sequences]
        rewards = self.reward(texts, [e["query"] for e in batch], [e["image_id"] for e in batch])
        keep, kept_rewards = [], []
        for example, sequence, reward in zip(batch, sequences, rewards.tolist(), strict=True):
            reason = screen(sequence, reward, self.tokenizer.eos_token_id, h.max_new_tokens)
            penalised = (reason in (EMPTY, OVER_LENGTH) and h.degenerate_reward is not None
                         and sequence.response_ids.numel() > 0)
            if reason is not None:
                self.skipped[reason] += 1
                log.warning("query %s: rollout %s (%s)", example["key"], "penalised" if penalised else "skipped",
                            reason)
            keep.append(reason is None or penalised)
            kept_rewards.append(reward if reason is None else h.degenerate_reward if penalised else 0.0)
        packed = pack_rollouts(sequences, keep, self.tokenizer.pad_token_id)
        packed = PackedRollouts(*(t.to(self.device) for t in vars(packed).values()))
        return packed, torch.tensor(kept_rewards, dtype=rewards.dtype, device=self.device), texts

    @torch.no_grad()
    def advantages(self, packed: PackedRollouts, rewards: torch.Tensor) -> dict[str, torch.Tensor]:
        """Old values, advantages (whitened) and returns [B, T−1], and the sequence KL of the kept rows."""
        _, old_values = self.forward_rollouts(self.model, packed, with_values=True)
        ref_logprobs, _ = self.forward_rollouts(self.reference_model, packed)
        kept = packed.mask.any(dim=1).nonzero().flatten()
        advantages, returns = torch.zeros_like(packed.mask), torch.zeros_like(packed.mask)
        kl = packed.mask.new_zeros(0)
        if kept.numel():
            old, ref, mask = packed.old_logprobs[kept], ref_logprobs[kept], packed.mask[kept]
            token_rewards, _ = kl_penalised_rewards(rewards[kept], old, ref, mask, self.kl_controller.value)
            kept_advantages, kept_returns = gae(token_rewards, old_values[kept], mask, self.hparams.gamma,
                                                self.hparams.lam)
            advantages[kept], returns[kept] = kept_advantages, kept_returns
            kl = sequence_kl(old, ref, mask)
        if packed.mask.sum() >= 2:
            advantages = whiten(advantages, packed.mask) * packed.mask
        return {"old_values": old_values, "advantages": advantages, "returns": returns, "kl": kl}

    def greedy_rewrites(self, examples: list[dict[str, Any]]) -> list[str]:
        """The policy's greedy rewrite of each query (at most ``max_new_tokens``)."""
        decoding = {"max_new_tokens": self.hparams.max_new_tokens, "do_sample": False, "num_beams": 1}
        return generate_texts(self.model, self.processor, [e["instruction"] for e in examples], decoding=decoding,
                              batch_size=len(examples), prompt_style=self.hparams.prompt_style)

    def validation_step(self, batch: list[dict[str, Any]], batch_idx: int) -> None:
        rewards = self.reward(self.greedy_rewrites(batch), [e["query"] for e in batch], [e["image_id"] for e in batch])
        self.log("val/reward", torch.nanmean(rewards).to(self.device), sync_dist=True, batch_size=len(batch))

    def sample_outputs(self, examples: list[dict[str, Any]]) -> list[str]:
        """Greedy rewrites of fixed validation queries (the console's SampleOutputsCallback logs them)."""
        return self.greedy_rewrites(examples)

    def training_step(self, batch: list[dict[str, Any]], batch_idx: int) -> None:
        h = self.hparams
        packed, rewards, texts = self.rollout(batch)
        estimates = self.advantages(packed, rewards)
        optimizer, scheduler = self.optimizers(), self.lr_schedulers()
        totals: Counter[str] = Counter()
        for _ in range(h.ppo_epochs):
            for rows in torch.randperm(len(batch)).chunk(h.mini_batches):
                part = PackedRollouts(*(t[rows.to(self.device)] for t in vars(packed).values()))
                logps, values = self.forward_rollouts(self.model, part, with_values=True)
                if part.mask.sum() > 0:
                    policy = policy_loss(logps, part.old_logprobs, estimates["advantages"][rows], part.mask,
                                         h.clip_range)
                    value = value_loss(values, estimates["old_values"][rows], estimates["returns"][rows], part.mask,
                                       h.value_clip_range)
                    loss = policy["loss"] + h.value_coef * value["loss"]
                    totals.update({"policy_loss": policy["loss"].item(), "value_loss": value["loss"].item(),
                                   "policy_clipfrac": policy["clipfrac"].item(),
                                   "approx_kl": policy["approx_kl"].item(), "updates": 1})
                else:  # nothing to learn from here, but every process makes the same backward passes (DDP)
                    loss = 0.0 * (logps.sum() + values.sum())
                optimizer.zero_grad()
                self.manual_backward(loss)
                self.clip_gradients(optimizer, gradient_clip_val=h.max_grad_norm, gradient_clip_algorithm="norm")
                optimizer.step()
                scheduler.step()
        self._update_kl_and_log(packed, rewards, estimates["kl"], texts, batch, totals)

    def _update_kl_and_log(self, packed: PackedRollouts, rewards: torch.Tensor, kl: torch.Tensor, texts: list[str],
                           batch: list[dict[str, Any]], totals: Counter) -> None:
        kept = packed.mask.any(dim=1)
        local = torch.tensor([float(kl.sum()), float(kept.sum()), float(rewards[kept].sum()),
                              float(packed.mask.sum()), float(len(batch))], dtype=torch.float64, device=self.device)
        total = self.trainer.strategy.reduce(local, reduce_op="sum")
        rollouts = int(total[1])
        beta = self.kl_controller.value
        metrics = {"train/kl_coef": beta, "train/rollouts": float(rollouts),
                   "train/skipped": float(total[4]) - rollouts}
        if rollouts:
            mean_kl = float(total[0] / total[1])
            self.kl_controller.update(mean_kl, rollouts)
            metrics.update({"train/kl": mean_kl, "train/reward": float(total[2] / total[1]),
                            "train/rewrite_tokens": float(total[3] / total[1])})
        if totals["updates"]:
            metrics.update({f"train/{k}": v / totals["updates"] for k, v in totals.items() if k != "updates"})
        if self.similarity is not None and bool(kept.any()):
            rows = kept.nonzero().flatten().tolist()
            metrics["train/similarity"] = float(self.similarity.pairwise([batch[r]["query"] for r in rows],
                                                                         [texts[r] for r in rows]).mean())
        self.log_dict(metrics, batch_size=len(batch))

    def on_train_end(self) -> None:
        if self.skipped and self.global_rank == 0:
            log.info("PPO rollouts skipped: %s", dict(self.skipped))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[KL_KEY] = self.kl_controller.state_dict()
        checkpoint[SKIPPED_KEY] = dict(self.skipped)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if KL_KEY in checkpoint:
            self.kl_controller.load_state_dict(checkpoint[KL_KEY])
        self.skipped = Counter(checkpoint.get(SKIPPED_KEY, {}))

    def configure_optimizers(self) -> dict:
        named = [*self.model.named_parameters(), *(("value_head." + n, p) for n, p in
                                                   self.value_head.named_parameters())]
        return adamw_warmup_cosine(named, self.hparams.lr, self.trainer.estimated_stepping_batches,
                                   weight_decay=self.hparams.weight_decay, warmup_steps=self.hparams.warmup_steps,
                                   betas=tuple(self.hparams.betas))
