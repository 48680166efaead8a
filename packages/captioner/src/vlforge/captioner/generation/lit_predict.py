"""CaptionerPredictLitModule: caption generation into the store as a Lightning predict run, so it scales out
with the trainer (``vlforge-captioner predict --config captioner:generation/predict_tiny.yaml
--trainer.devices 8``; under DDP each rank captions a disjoint part of the split).

Works with :class:`~vlforge.captioner.generation.datamodule.CaptionGenerationDataModule`. The run:

1. ``setup`` (rank 0, then a barrier): shards of this captioner left by an interrupted run are merged into
   the main store; then every rank reads the same list of images the captioner still has to caption and hands
   it to the data module, and fixes the shear budget T (``shear_tokens`` or the store's mean alt-text length);
2. ``predict_step``: generate (``generate_captions``), shear, and write captions with provenance plus failed
   images into this rank's shard store (one transaction per batch);
3. ``teardown`` (a barrier, then rank 0): merge every rank's shard into the main store and remove the shards.
"""

from __future__ import annotations

import lightning as L

from vlforge.captioner.generation.datamodule import CaptionGenerationDataModule
from vlforge.captioner.generation.spec import CaptionerSpec, build_captioner
from vlforge.captioner.generation.store_io import (
    PendingImage,
    caption_batch,
    default_shear_tokens,
    pending_ids,
)
from vlforge.common.errors import VLForgeError
from vlforge.common.lm.shards import ShardWriter
from vlforge.common.records import ImageRecord
from vlforge.common.sentences import resolve_splitter
from vlforge.common.store import CaptionStore


class CaptionerPredictLitModule(L.LightningModule):
    """One captioner (``captioner``: a :class:`CaptionerSpec` as a mapping) writing into the data module's
    store.

    ``generate_batch_size``: images per ``generate`` call (default: the data module's batch). ``shear``: text
    shearing on (to ``shear_tokens`` words, default the store's mean alt-text length). ``shard_root``: where
    the per-rank shard stores live (default ``<store>.generation-shards`` beside the store).
    ``sentence_splitter``: how shearing finds sentence ends (auto: regex for a ShapesWorld store, else pysbd).
    """

    def __init__(
        self,
        captioner: CaptionerSpec,
        generate_batch_size: int | None = None,
        shear: bool = True,
        shear_tokens: int | None = None,
        shard_root: str | None = None,
        sentence_splitter: str = "auto",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.spec = captioner if isinstance(captioner, CaptionerSpec) else CaptionerSpec(**captioner)
        self.format = self.spec.caption_format()
        built = build_captioner(self.spec)
        self.model, self.processor = built.model, built.processor
        self.captioner = built
        self.shear_tokens: int | None = None
        self.splitter = resolve_splitter(sentence_splitter)  # "auto" is resolved from the store in setup
        self._writer: ShardWriter | None = None
        self._ready = False

    def setup(self, stage: str) -> None:
        if stage != "predict":
            raise VLForgeError("CaptionerPredictLitModule only predicts; run `vlforge-captioner predict`")
        data = self.trainer.datamodule
        if not isinstance(data, CaptionGenerationDataModule):
            raise VLForgeError("CaptionerPredictLitModule needs a CaptionGenerationDataModule as data")
        self._writer = ShardWriter(data.store, self.spec.name, self.global_rank, self.hparams.shard_root,
                                   {"captioner": self.spec.name})
        if self.trainer.is_global_zero:
            self._writer.merge()
        self.trainer.strategy.barrier("captioner-generation-setup")
        with CaptionStore(self._writer.store_path, readonly=True) as store:
            if self.hparams.shear:
                self.shear_tokens = self.hparams.shear_tokens or default_shear_tokens(store)
            self.splitter = resolve_splitter(self.hparams.sentence_splitter, store.info)
            data.select(pending_ids(store, data.split, self.spec.name, data.limit), self.format)
        self._ready = True

    def predict_step(self, batch: list[tuple[ImageRecord, PendingImage | str]], batch_idx: int) -> None:
        ready = [item for _, item in batch if isinstance(item, PendingImage)]
        failed = {record.image_id: item for record, item in batch if isinstance(item, str)}
        size = self.hparams.generate_batch_size or max(1, len(ready))
        captions = caption_batch(self.captioner, self.spec, self.format, ready, self.shear_tokens, size,
                                 self.splitter)
        self._writer.write([record for record, _ in batch], captions, failed, captions)

    def teardown(self, stage: str) -> None:
        if stage != "predict" or not self._ready:
            return
        self._writer.close()
        self.trainer.strategy.barrier("captioner-generation-merge")
        if self.trainer.is_global_zero:
            self._writer.merge()
        self._ready = False
