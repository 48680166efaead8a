"""CriticPredictLitModule: critic-rewrite of a store's captions as a Lightning predict run
(``vlforge-critic predict --config critic:predict_tiny.yaml``; under DDP each rank checks a disjoint part).

Works with :class:`~vlforge.critic.predict_data.CriticPredictDataModule`. The run:

1. ``setup`` (rank 0, then a barrier): shards of an interrupted run are merged into the main store; every rank
   then selects the split's images that have a caption of ``source`` and none of ``<source>+critic`` yet
   (``common.lm.generated_store.pending_ids``), so a rerun resumes and nothing is written twice;
2. ``predict_step``: decompose, score (a critic model, or the scene graph) and rewrite (a generative rewriter, or
   drop the inconsistent sentences) (:class:`~vlforge.critic.critic_rewrite.CriticRewrite`); the
   new captions and the failed images (undecodable image) go into this rank's shard store;
3. ``teardown`` (a barrier, then rank 0): the shards are merged into the main store (``common.lm.shards``) and
   a summary is logged (images, sentences per verdict, captions cut, failures, images without a caption of
   ``source``). Captions already stored are never changed: the run only appends captions of a new source.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import lightning as L
import torch
from PIL import Image

from vlforge.common.errors import VLForgeError
from vlforge.common.lm.generated_store import captioned_ids, pending_ids
from vlforge.common.lm.model import GenerativeModel
from vlforge.common.lm.shards import ShardWriter
from vlforge.common.records import ImageRecord
from vlforge.common.store import CaptionStore
from vlforge.critic.critic_rewrite import COUNTS, CriticRewrite
from vlforge.critic.critic_rewrite import critic_source as target_source
from vlforge.critic.predict_data import CriticPredictDataModule
from vlforge.critic.rewrite_generative import GenerativeRewriter
from vlforge.critic.scene_graph_critic import SCENE_GRAPH
from vlforge.critic.scoring import SCORING_MODES

log = logging.getLogger(__name__)


class CriticPredictLitModule(L.LightningModule):
    """The critic ``critic_source`` (a preset, hub name or folder; ``checkpoint``: a critic SFT checkpoint;
    "scene_graph": the scene-graph critic of a ShapesWorld store) checking the captions of ``source`` (of ``kind``,
    or the first of any kind). ``mode``: "probability" (fast) or "critique"; ``instruction``: the one the critic was
    trained with; ``max_sentences``: longer captions are cut. ``rewriter_source`` (+ ``rewriter_checkpoint``): the
    generative rewrite, asked with the rewrite prompt ``rewrite_prompt`` per caption or per sentence
    (``rewrite_scope``; None: drop the inconsistent sentences).
    ``target``: the new captions' source (default ``<source>+critic``)."""

    def __init__(self, source: str, critic_source: str = "preset:llava_tiny", checkpoint: str | None = None,
                 kind: str | None = None, mode: str = "probability", instruction: str = "fig14",
                 prompt_style: str = "chat", decoding: dict[str, Any] | None = None, max_sentences: int = 20,
                 score_batch_size: int = 32, dtype: str = "float32", trust_remote_code: bool = False,
                 shard_root: str | None = None, splitter: str = "regex", rewriter_source: str | None = None,
                 rewriter_checkpoint: str | None = None, rewrite_prompt: str = "fig15",
                 rewrite_critiqued: str = "inconsistent", rewrite_max_new_tokens: int = 256,
                 rewrite_scope: str = "caption", target: str | None = None) -> None:
        super().__init__()
        self.save_hyperparameters()
        if mode not in SCORING_MODES:
            raise VLForgeError(f"mode {mode!r} is not one of {', '.join(SCORING_MODES)}")
        if max_sentences < 1:
            raise VLForgeError(f"max_sentences must be >= 1, got {max_sentences}")
        self.model = self.processor = None
        if critic_source != SCENE_GRAPH:
            critic = GenerativeModel(critic_source, dtype=dtype, trust_remote_code=trust_remote_code,
                                     weights=checkpoint)
            self.model, self.processor = critic.model, critic.processor
        rewriter = GenerativeRewriter(rewriter_source, rewriter_checkpoint, rewrite_prompt, rewrite_critiqued,
                                      rewrite_max_new_tokens, score_batch_size, prompt_style, scope=rewrite_scope,
                                      dtype=dtype, trust_remote_code=trust_remote_code) if rewriter_source else None
        self.rewriter_model = rewriter.holder.model if rewriter else None  # moved to the run's device by Lightning
        self.target = target or target_source(source)
        self.rewrite = CriticRewrite(self.model, self.processor, source, kind, mode, instruction, prompt_style,
                                     decoding, max_sentences, score_batch_size, splitter,
                                     {"critic": critic_source, "critic_checkpoint": checkpoint,
                                      "rewriter_source": rewriter_source, "rewriter_checkpoint": rewriter_checkpoint},
                                     rewriter, self.target)
        self.counts: Counter[str] = Counter(dict.fromkeys(COUNTS, 0))
        self._writer: ShardWriter | None = None
        self._ready = False

    def setup(self, stage: str) -> None:
        if stage != "predict":
            raise VLForgeError("CriticPredictLitModule only predicts; run `vlforge-critic predict`")
        data = self.trainer.datamodule
        if not isinstance(data, CriticPredictDataModule):
            raise VLForgeError("CriticPredictLitModule needs a CriticPredictDataModule as data")
        self._writer = ShardWriter(data.store, self.target, self.global_rank, self.hparams.shard_root,
                                   {"critic_rewrite": self.target})
        if self.trainer.is_global_zero:
            self._writer.merge()
        self.trainer.strategy.barrier("critic-rewrite-setup")
        with CaptionStore(self._writer.store_path, readonly=True) as store:
            pending = pending_ids(store, data.split, self.target, data.limit)
            with_caption = captioned_ids(store, data.split, self.hparams.source)
        selected = [i for i in pending if i in with_caption]
        if self.trainer.is_global_zero:  # every rank selects the same list: count it once
            self.counts["without_caption"] = len(pending) - len(selected)
        data.select(selected)
        self._ready = True

    def predict_step(self, batch: list[tuple[ImageRecord, Image.Image | str]], batch_idx: int) -> None:
        ready = [(record, item) for record, item in batch if not isinstance(item, str)]
        failed = {record.image_id: item for record, item in batch if isinstance(item, str)}
        captions, counts = self.rewrite(ready)
        self.counts.update(counts)
        self.counts["failures"] += len(failed)
        self._writer.write([record for record, _ in ready], captions, failed, captions)

    def teardown(self, stage: str) -> None:
        if stage != "predict" or not self._ready:
            return
        self._writer.close()
        self.trainer.strategy.barrier("critic-rewrite-merge")
        names = [*COUNTS, "failures", "without_caption"]
        totals = torch.tensor([float(self.counts[n]) for n in names], device=self.device)
        totals = self.trainer.strategy.reduce(totals, reduce_op="sum")
        if self.trainer.is_global_zero:
            added = self._writer.merge()
            summary = dict(zip(names, (int(v) for v in totals.tolist()), strict=True))
            log.info("critic-rewrite %s: %d captions added; %s", self.target, added,
                     ", ".join(f"{k} {v}" for k, v in summary.items()))
        self._ready = False
