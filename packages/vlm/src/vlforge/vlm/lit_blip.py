"""BlipLitModule: BLIP pre-training (ITC + ITM with mined hard negatives + LM) on the contrastive data and
evaluation.

It extends :class:`vlforge.vlm.lit_contrastive.ContrastiveLitModule`, so it takes the same batches from
:class:`vlforge.vlm.data.ContrastiveDataModule` and keeps its optimizer (AdamW, warm-up, cosine), skipped-item
counts, non-finite-loss stop and evaluation: validation / test log retrieval R@1/5/10 both ways and ARO-style
accuracy from the ITC features (``<stage>/t2i_r1``, ``<stage>/aro_all``, ...).

Training loss: ``itc_weight * L_itc + itm_weight * L_itm + lm_weight * L_lm`` (BLIP: all 1), each logged as
``train/itc`` / ``train/itm`` / ``train/lm``; an objective with weight 0 is not computed. L_itc is ``loss``
(CLIP InfoNCE by default; NegCLIP negatives from the batch are added to its text side). L_itm scores every
matched pair and, per BLIP, one negative text per image and one negative image per text drawn from the ITC
similarities (:mod:`vlforge.vlm.losses.blip`), across processes when a DDP group exists. L_lm is the
captioning decoder's loss.

Under DDP every rank joins every collective of a step in the same order, whatever its batch holds: hard
negatives are gathered even by ranks that have none, and a rank whose batch was skipped entirely runs the ITC and
ITM gathers with zero-row tensors: its loss is ITC's (computed over the gathered batch, as on every rank) and
nothing for ITM / LM (per-rank means). That rank also runs one blank row through the modules a normal step uses,
weighted 0, so that DDP's gradient all-reduce sees the same parameters used on every rank.

Which pairs share an image: the batch's ``image_ids`` when the DataModule provides them, else images whose
pixel tensors are identical (exact without augmentation; two augmented views of one image count as different
images).

``itm_rerank_k > 0`` adds BLIP's re-ranking to evaluation: for each image its top-k texts by ITC and for each
text its top-k images are re-scored with ITM (score = ITM matched logit + ITC cosine; everything outside the
top k ranks below), logged as ``<stage>/itm_t2i_r1`` ...; ARO pairs are also scored by ITM
(``<stage>/itm_aro_<kind>``).
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vlforge.common.distributed import gather_variable_with_grad, world
from vlforge.common.errors import VLForgeError
from vlforge.common.metrics import retrieval_metrics
from vlforge.vlm.evaluation import pairwise_accuracy
from vlforge.vlm.lit_contrastive import ContrastiveLitModule
from vlforge.vlm.losses.blip import (
    caption_labels,
    caption_lm_loss,
    gather_rows,
    itm_loss,
    mine_hard_negatives,
)
from vlforge.vlm.models.blip import BlipPretrainingModel

_PIXEL_KEY_STRIDE = 2**32  # owner keys from pixel equality: group index + rank * stride (unique across ranks)


def owner_keys(batch: dict[str, Any]) -> torch.Tensor:
    """int64 key per pair naming its image: a hash of ``image_ids`` when present, else groups of identical
    images."""
    if batch.get("image_ids") is not None:
        keys = [int.from_bytes(hashlib.blake2b(str(i).encode(), digest_size=7).digest(), "big")
                for i in batch["image_ids"]]
        return torch.tensor(keys, dtype=torch.long, device=batch["images"].device)
    _, groups = torch.unique(batch["images"].flatten(1), dim=0, return_inverse=True)
    return groups + world()[0] * _PIXEL_KEY_STRIDE


class BlipLitModule(ContrastiveLitModule):
    """Train a :class:`BlipPretrainingModel` with BLIP's three objectives (AdamW, warm-up, cosine)."""

    tokens_from_loader = False  # texts and negatives are tokenized apart (their own padding), in the step

    def __init__(self, model: BlipPretrainingModel, loss: nn.Module | None = None, itc_weight: float = 1.0,
                 itm_weight: float = 1.0, lm_weight: float = 1.0, label_smoothing: float = 0.0,
                 itm_rerank_k: int = 0, lr: float = 5e-4, weight_decay: float = 0.05,
                 warmup_steps: int = 0, betas: tuple[float, float] = (0.9, 0.98), warmup_ratio: float = 0.0,
                 learning_rate: float | None = None) -> None:
        super().__init__(model, loss, lr, weight_decay, warmup_steps, betas, warmup_ratio=warmup_ratio,
                         learning_rate=learning_rate)
        self.save_hyperparameters(ignore=["model", "loss", "learning_rate"])
        if learning_rate is not None:
            self.hparams.lr = learning_rate
        weights = {"itc_weight": itc_weight, "itm_weight": itm_weight, "lm_weight": lm_weight}
        if any(w < 0 for w in weights.values()) or not any(w > 0 for w in weights.values()):
            raise VLForgeError(f"BLIP loss weights must be >= 0 with at least one > 0, got {weights}")
        if itm_rerank_k < 0:
            raise VLForgeError(f"itm_rerank_k must be >= 0, got {itm_rerank_k}")
        self._itm_eval: dict[str, list] = {}

    # ------------------------------------------------------------------ training
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor | None:
        self.skipped.update(batch["skipped"])
        for reason, count in self.skipped.items():
            self.log(f"train/skipped_{reason}", float(count))
        n = len(batch["texts"])
        distributed = world()[1] > 1
        if n == 0:
            return self._empty_rank_loss() if distributed else None
        hp = self.hparams
        tokens = {k: v.to(self.device) for k, v in self.model.tokenize(batch["texts"]).items()}
        image_embeddings = self.model.image_embeddings(batch["images"])
        image_features = self.model.image_features(image_embeddings)
        text_features = self.model.encode_text(tokens)
        losses: dict[str, torch.Tensor] = {}
        if hp.itc_weight > 0:
            if batch["negatives"]:
                negatives = self._encode_texts(batch["negatives"])
            else:  # across processes every rank gathers negatives, maybe none of its own
                negatives = text_features[:0] if distributed else None
            losses["itc"] = self.loss(image_features, text_features, self.model.scale(), None,
                                      negative_text_features=negatives)
        if hp.itm_weight > 0:
            losses["itm"] = self._itm_loss(image_embeddings, image_features, text_features, tokens,
                                           owner_keys(batch))
        if hp.lm_weight > 0:
            ids, mask = tokens["input_ids"], tokens["attention_mask"]
            logits = self.model.caption_logits(image_embeddings, ids, mask)
            losses["lm"] = caption_lm_loss(logits, caption_labels(ids, mask), hp.label_smoothing)
        loss = sum(getattr(hp, f"{name}_weight") * value for name, value in losses.items())
        if not torch.isfinite(loss):
            raise VLForgeError(f"training loss is {loss.item()} at step {self.global_step} "
                               f"(batch {batch_idx}); stopping (lower the learning rate or check the data)")
        self.log("train/loss", loss, prog_bar=True, batch_size=n)
        for name, value in losses.items():
            self.log(f"train/{name}", value.detach(), batch_size=n)
        self.log("train/logit_scale", self.model.scale().detach(), batch_size=n)
        return loss

    def _empty_rank_loss(self) -> torch.Tensor:
        """The loss of a rank without pairs under DDP (module docstring). One blank row (a zero image, a pad-only
        text) runs through the modules a normal step uses, weighted 0, so that DDP sees the same parameters used;
        the ITC and ITM gathers see zero rows, so the other ranks' losses are unchanged."""
        hp, model = self.hparams, self.model
        size = model.vision_model.config.image_size
        ids = torch.full((1, 1), model.tokenizer.pad_token_id, dtype=torch.long, device=self.device)
        mask = torch.ones_like(ids)
        image_embeddings = model.image_embeddings(model.scale().new_zeros((1, 3, size, size)))
        image_features = model.image_features(image_embeddings)
        text_features = model.encode_text({"input_ids": ids, "attention_mask": mask})
        loss = 0.0 * (image_features.sum() + text_features.sum())
        if hp.itc_weight > 0:
            loss = loss + self.loss(image_features[:0], text_features[:0], model.scale(), None,
                                    negative_text_features=text_features[:0])
        if hp.itm_weight > 0:
            owners = torch.zeros(0, dtype=torch.long, device=self.device)
            loss = loss + self._itm_loss(image_embeddings[:0], image_features[:0], text_features[:0],
                                         {"input_ids": ids[:0], "attention_mask": mask[:0]}, owners)
            loss = loss + 0.0 * model.itm_logits(image_embeddings, ids, mask).sum()
        if hp.lm_weight > 0:
            loss = loss + 0.0 * model.caption_logits(image_embeddings, ids, mask).sum()
        return loss

    def _itm_loss(self, image_embeddings: torch.Tensor, image_features: torch.Tensor,
                  text_features: torch.Tensor, tokens: dict[str, torch.Tensor],
                  owners: torch.Tensor) -> torch.Tensor:
        """ITM over the n matched pairs, each text with a mined negative image, each image with a mined
        negative text (rows without any negative in the global batch are left out)."""
        ids, mask = tokens["input_ids"], tokens["attention_mask"]
        negative_text, negative_image, _ = mine_hard_negatives(image_features, text_features, owners,
                                                               self.model.scale().detach())
        all_embeddings = gather_variable_with_grad(image_embeddings)
        all_ids = gather_rows(ids, self.model.tokenizer.pad_token_id)
        all_mask = gather_rows(mask, 0)
        extra = all_ids.shape[1] - ids.shape[1]  # another rank's texts may be longer
        ids = F.pad(ids, (0, extra), value=self.model.tokenizer.pad_token_id)
        mask = F.pad(mask, (0, extra), value=0)
        texts_with, images_with = negative_image >= 0, negative_text >= 0
        chosen_texts = negative_text[images_with]
        embeddings = torch.cat([image_embeddings, all_embeddings[negative_image[texts_with]],
                                image_embeddings[images_with]])
        input_ids = torch.cat([ids, ids[texts_with], all_ids[chosen_texts]])
        attention = torch.cat([mask, mask[texts_with], all_mask[chosen_texts]])
        if embeddings.shape[0] == 0:  # a rank without pairs (it still joined the gathers above)
            return embeddings.sum()
        labels = torch.zeros(embeddings.shape[0], dtype=torch.long, device=embeddings.device)
        labels[:ids.shape[0]] = 1
        return itm_loss(self.model.itm_logits(embeddings, input_ids, attention), labels)

    # ------------------------------------------------------------------ evaluation with ITM
    def _eval_start(self) -> None:
        super()._eval_start()
        self._itm_eval = {"embeddings": [], "tokens": [], "pos": [], "neg": [], "kinds": []}

    def _eval_step(self, batch: dict[str, Any]) -> None:
        super()._eval_step(batch)
        if self.hparams.itm_rerank_k == 0:
            return
        embeddings = self.model.image_embeddings(batch["images"])
        ev = self._itm_eval
        ev["embeddings"].append(embeddings.cpu())
        ev["tokens"].extend(self._token_rows([t for texts in batch["texts"] for t in texts]))
        pairs = [(i, pos, neg, kind) for i, negs in enumerate(batch["negatives"]) for pos, neg, kind in negs]
        if pairs:
            index = torch.tensor([p[0] for p in pairs], device=embeddings.device)
            for key, column in (("pos", 1), ("neg", 2)):
                tokens = self.model.tokenize([p[column] for p in pairs])
                logits = self.model.itm_logits(embeddings[index], tokens["input_ids"].to(self.device),
                                               tokens["attention_mask"].to(self.device))
                ev[key].append(logits[:, 1].float().cpu())
            ev["kinds"].extend(p[3] for p in pairs)

    def _token_rows(self, texts: list[str]) -> list[torch.Tensor]:
        tokens = self.model.tokenize(texts)
        rows = zip(tokens["input_ids"], tokens["attention_mask"], strict=True)
        return [ids[mask.bool()] for ids, mask in rows]

    def _eval_end(self, stage: str) -> dict[str, float]:
        metrics: dict[str, float] = {}
        if self.hparams.itm_rerank_k > 0 and self._eval.get("images"):
            metrics = self._itm_metrics()
            for name, value in metrics.items():
                if math.isfinite(value):
                    self.log(f"{stage}/{name}", float(value), sync_dist=False)
        self._itm_eval = {}
        return {**super()._eval_end(stage), **metrics}

    def _itm_metrics(self) -> dict[str, float]:
        """BLIP's top-k ITM re-ranking of the ITC similarities in both directions, and ITM ARO accuracy."""
        image_features, text_features = torch.cat(self._eval["images"]), torch.cat(self._eval["texts"])
        owners = torch.tensor(self._eval["owners"])
        similarity = image_features @ text_features.T
        embeddings = torch.cat(self._itm_eval["embeddings"])
        tokens = self._itm_eval["tokens"]
        k = self.hparams.itm_rerank_k
        out: dict[str, float] = {}
        for direction, matrix in (("i2t", similarity), ("t2i", similarity.T)):
            reranked = torch.full_like(matrix, float("-inf"))
            top = matrix.topk(min(k, matrix.shape[1]), dim=1).indices
            for row in range(matrix.shape[0]):
                if direction == "i2t":
                    scores = self._itm_scores(embeddings[row].expand(top.shape[1], -1, -1),
                                              [tokens[j] for j in top[row]])
                else:
                    scores = self._itm_scores(embeddings[top[row]], [tokens[row]] * top.shape[1])
                reranked[row, top[row]] = scores + matrix[row, top[row]]
            reranked = reranked.nan_to_num(neginf=reranked[reranked.isfinite()].min().item() - 1.0)
            per_image = reranked if direction == "i2t" else reranked.T
            found = retrieval_metrics(per_image, owners)
            out.update({f"itm_{name}": v for name, v in found.items() if name.startswith(direction)})
        if self._itm_eval["kinds"]:
            aro = pairwise_accuracy(torch.cat(self._itm_eval["pos"]), torch.cat(self._itm_eval["neg"]),
                                    self._itm_eval["kinds"])
            out.update({f"itm_aro_{kind}": v for kind, v in aro.items()})
        return out

    def _itm_scores(self, embeddings: torch.Tensor, token_rows: list[torch.Tensor]) -> torch.Tensor:
        """Matched logits of ``embeddings[b]`` with ``token_rows[b]`` (unpadded ids), on the module's
        device."""
        pad = self.model.tokenizer.pad_token_id
        ids = nn.utils.rnn.pad_sequence(token_rows, batch_first=True, padding_value=pad)
        mask = nn.utils.rnn.pad_sequence([torch.ones_like(t) for t in token_rows], batch_first=True)
        logits = self.model.itm_logits(embeddings.to(self.device), ids.to(self.device), mask.to(self.device))
        return logits[:, 1].float().cpu()
