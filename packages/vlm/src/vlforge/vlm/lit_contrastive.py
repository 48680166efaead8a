"""ContrastiveLitModule: CLIP / SigLIP training of a ContrastiveModel, retrieval and ARO-style evaluation. The module
receives its network and loss (composition). A training batch comes from
:class:`vlforge.vlm.data.ContrastiveDataModule`: images, texts, optional hard-negative captions (appended to the text
side of the loss, NegCLIP style), the texts and negatives already tokenized (``tokens``: in ``setup`` the module hands
its model's ``text_tokenizer`` to the DataModule, whose collate runs it in the DataLoader workers; batches without
``tokens`` are tokenized in the step) and the count of skipped items by reason (logged cumulatively as
``train/skipped_<reason>``; under DDP ranks may hold different numbers of pairs, none included). A non-finite loss stops
the run with a VLForgeError naming the step. Validation and test log ``<stage>/t2i_r1`` ... (retrieval over every
evaluation caption) and ``<stage>/aro_<perturbation>``. With ``zero_shot_tasks`` / ``linear_probe_tasks`` (ShapesWorld
shape / colour / count) they also log ``<stage>/zero_shot_<task>_top1`` (``_top5``) and ``<stage>/linear_probe_<task>``,
computed at the end of the epoch on the datamodule's store and evaluation split (the probe fitted on
``linear_probe_train_split``); not during the sanity check.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from typing import Any

import torch
from lightning.pytorch import LightningModule
from torch import nn

from vlforge.common.distributed import world
from vlforge.common.errors import VLForgeError
from vlforge.common.lm.loading import weights_from
from vlforge.common.optim import adamw_warmup_cosine
from vlforge.vlm.evaluation import encode_split, pairwise_accuracy, retrieval_from_features
from vlforge.vlm.linear_probe import shapes_linear_probe
from vlforge.vlm.losses import ClipLoss, SigLipLoss
from vlforge.vlm.models import ContrastiveModel
from vlforge.vlm.zero_shot import OBJECT_RULES, SHAPES_TASKS, shapes_zero_shot


class ContrastiveLitModule(LightningModule):
    """Train ``model`` with ``loss`` (default CLIP InfoNCE); AdamW, linear warm-up then cosine decay to 0
    (:func:`vlforge.common.optim.adamw_warmup_cosine`: ``lr``, ``weight_decay``, ``warmup_steps`` or
    ``warmup_ratio``, ``betas`` — the argument names of every vlforge LitModule). ``learning_rate`` is the former
    name of ``lr``, kept so that saved run configs still load. ``weights``: start ``model`` from the model weights of
    a ContrastiveLitModule checkpoint (its ``model.*`` entries; NegCLIP's fine-tuning of a trained CLIP), not a
    resume: optimizer and schedule start afresh."""

    tokens_from_loader = True  # the training step reads ``batch["tokens"]`` (texts then negatives) when present

    def __init__(self, model: ContrastiveModel, loss: nn.Module | None = None, lr: float = 5e-4,
                 weight_decay: float = 0.1, warmup_steps: int = 0, betas: tuple[float, float] = (0.9, 0.98),
                 zero_shot_tasks: list[str] | None = None, linear_probe_tasks: list[str] | None = None,
                 linear_probe_train_split: str = "seed", object_rule: str = "largest", warmup_ratio: float = 0.0,
                 learning_rate: float | None = None, weights: str | None = None) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["model", "loss", "learning_rate"])
        if learning_rate is not None:
            warnings.warn("ContrastiveLitModule: 'learning_rate' is now 'lr'", DeprecationWarning, stacklevel=2)
            self.hparams.lr = learning_rate
        unknown = sorted((set(zero_shot_tasks or []) | set(linear_probe_tasks or [])) - set(SHAPES_TASKS))
        if unknown:
            raise VLForgeError(f"ShapesWorld task {unknown[0]!r} is not one of {', '.join(SHAPES_TASKS)}")
        if object_rule not in OBJECT_RULES:
            raise VLForgeError(f"object_rule {object_rule!r} is not one of {', '.join(OBJECT_RULES)}")
        if weights is not None:
            weights_from(weights, model)
        self.model = model
        self.loss = loss if loss is not None else ClipLoss()
        if isinstance(self.loss, SigLipLoss) and model.logit_bias is None:
            raise VLForgeError("the SigLIP loss needs a model with a logit bias "
                               "(model.init_logit_bias, e.g. -10)")
        self.skipped: Counter[str] = Counter()
        self._eval: dict[str, list] = {}

    def setup(self, stage: str) -> None:
        """Give the DataModule the model's text tokenizer (it tokenizes in its DataLoader workers) if it takes one."""
        datamodule = self.trainer.datamodule
        if hasattr(datamodule, "text_tokenizer"):
            datamodule.text_tokenizer = self.model.text_tokenizer if self.tokens_from_loader else None

    def _encode_texts(self, texts: list[str], tokens: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Text features of ``texts``; ``tokens``: the same texts already tokenized (by the DataLoader's collate)."""
        tokens = self.model.tokenize(texts) if tokens is None else tokens
        return self.model.encode_text({k: v.to(self.device) for k, v in tokens.items()})

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor | None:
        self.skipped.update(batch["skipped"])
        for reason, count in self.skipped.items():
            self.log(f"train/skipped_{reason}", float(count))
        if "rewritten" in batch and batch["texts"]:  # query rewriting in fine-tuning (vlforge.vlm.rewrite_swap)
            self.log("train/rewritten_share", batch["rewritten"] / len(batch["texts"]), batch_size=len(batch["texts"]))
        distributed = world()[1] > 1
        if len(batch["texts"]) == 0:
            return self._empty_rank_loss() if distributed else None
        n = len(batch["texts"])
        image_features = self.model.encode_image(batch["images"])
        text_features = self._encode_texts(batch["texts"] + batch["negatives"], batch.get("tokens"))
        # across processes every rank gathers negatives (maybe none of its own), so the collectives stay matched
        negatives = text_features[n:] if batch["negatives"] or distributed else None
        loss = self.loss(image_features, text_features[:n], self.model.scale(), self.model.logit_bias,
                         negative_text_features=negatives)
        if not torch.isfinite(loss):
            raise VLForgeError(f"training loss is {loss.item()} at step {self.global_step} "
                               f"(batch {batch_idx}); stopping (lower the learning rate or check the data)")
        self.log("train/loss", loss, prog_bar=True, batch_size=n)
        self.log("train/logit_scale", self.model.scale().detach(), batch_size=n)
        return loss

    def _empty_rank_loss(self) -> torch.Tensor:
        """Under DDP, a rank whose batch was skipped entirely still joins the loss's gathers and the gradient
        all-reduce (otherwise the other ranks wait forever): zero-row features, and a zero loss that reaches every
        trainable parameter."""
        empty = self.model.logit_scale.new_zeros((0, self.model.text_tower.embed_dim)).requires_grad_()
        loss = self.loss(empty, empty, self.model.scale(), self.model.logit_bias, negative_text_features=empty)
        return loss + 0.0 * sum(p.sum() for p in self.parameters() if p.requires_grad)

    # ------------------------------------------------------------------ evaluation
    def _eval_step(self, batch: dict[str, Any]) -> None:
        image_features = self.model.encode_image(batch["images"])
        flat = [t for texts in batch["texts"] for t in texts]
        text_features = self._encode_texts(flat)
        offset = sum(f.shape[0] for f in self._eval["images"])
        owners = [offset + i for i, texts in enumerate(batch["texts"]) for _ in texts]
        self._eval["images"].append(image_features.float().cpu())
        self._eval["texts"].append(text_features.float().cpu())
        self._eval["owners"].extend(owners)
        pairs = [(i, pos, neg, kind) for i, negs in enumerate(batch["negatives"]) for pos, neg, kind in negs]
        if pairs:
            features = self._encode_texts([p[1] for p in pairs] + [p[2] for p in pairs]).float()
            index = torch.tensor([p[0] for p in pairs], device=features.device)
            chosen = image_features.float()[index]
            self._eval["pos"].append((chosen * features[:len(pairs)]).sum(-1).cpu())
            self._eval["neg"].append((chosen * features[len(pairs):]).sum(-1).cpu())
            self._eval["kinds"].extend(p[3] for p in pairs)

    def _eval_start(self) -> None:
        self._eval = {"images": [], "texts": [], "owners": [], "pos": [], "neg": [], "kinds": []}

    def _eval_end(self, stage: str) -> dict[str, float]:
        ev = self._eval
        if not ev["images"]:
            return {}
        metrics = retrieval_from_features(torch.cat(ev["images"]), torch.cat(ev["texts"]),
                                          torch.tensor(ev["owners"]))
        if ev["kinds"]:
            aro = pairwise_accuracy(torch.cat(ev["pos"]), torch.cat(ev["neg"]), ev["kinds"])
            metrics.update({f"aro_{k}": v for k, v in aro.items()})
        if not self.trainer.sanity_checking:
            metrics.update(self._shapes_metrics(stage))
        for name, value in metrics.items():
            if math.isfinite(value):
                self.log(f"{stage}/{name}", float(value), sync_dist=False)
        self._eval = {}
        return metrics

    def _shapes_metrics(self, stage: str) -> dict[str, float]:
        """Zero-shot and linear-probe accuracy on the datamodule's store (nothing unless tasks are set)."""
        zero_shot, probe = self.hparams.zero_shot_tasks, self.hparams.linear_probe_tasks
        if not zero_shot and not probe:
            return {}
        data = getattr(self.trainer.datamodule, "hparams", {})
        if not all(key in data for key in ("store", "image_size", f"{stage}_split")):
            raise VLForgeError("zero-shot / linear-probe evaluation needs a datamodule with store, "
                               f"image_size and {stage}_split (e.g. ContrastiveDataModule)")
        encode = {"store": data["store"], "image_size": data["image_size"]}
        encoding = encode_split(self.model, split=data[f"{stage}_split"], **encode)
        out: dict[str, float] = {}
        rule = self.hparams.object_rule
        for task, scores in shapes_zero_shot(self.model, encoding, zero_shot or [], rule).items():
            out.update({f"zero_shot_{task}_{k}": v for k, v in scores.items() if k.startswith("top")})
        if probe:
            train = encode_split(self.model, split=self.hparams.linear_probe_train_split, **encode)
            for task, scores in shapes_linear_probe(train, encoding, probe, rule).items():
                out[f"linear_probe_{task}"] = scores["accuracy"]
        return out

    def on_validation_epoch_start(self) -> None:
        self._eval_start()

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch)

    def on_validation_epoch_end(self) -> None:
        self._eval_end("val")

    def on_test_epoch_start(self) -> None:
        self._eval_start()

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._eval_step(batch)

    def on_test_epoch_end(self) -> None:
        self._eval_end("test")

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self) -> dict[str, Any]:
        return adamw_warmup_cosine(self.named_parameters(), self.hparams.lr, self.trainer.estimated_stepping_batches,
                                   weight_decay=self.hparams.weight_decay, warmup_steps=self.hparams.warmup_steps,
                                   warmup_ratio=self.hparams.get("warmup_ratio", 0.0), betas=tuple(self.hparams.betas))
