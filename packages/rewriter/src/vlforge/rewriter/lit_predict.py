"""RewriterPredictLitModule: a split's queries rewritten into the store as a Lightning predict run, so it scales
out with the trainer (``vlforge-rewriter predict --config rewriter:predict_tiny.yaml --trainer.devices 8``; under
DDP each rank rewrites a disjoint part of the split).

Works with :class:`~vlforge.rewriter.predict_data.QueryRewriteDataModule`. The run:

1. ``setup`` (rank 0, then a barrier): shards of this rewriter left by an interrupted run are merged into the main
   store, and the recorded failures of the records about to be retried are forgotten; then every rank reads the
   same list of records the rewriter has not rewritten yet (:func:`vlforge.common.lm.generated_store.pending_ids`)
   and hands it to the data module;
2. ``predict_step``: rewrite (:func:`vlforge.rewriter.rewrite_batch.rewrite_records`) and write the rewrites with
   provenance, and the skipped queries by id, into this rank's shard store (one transaction per batch);
3. ``teardown`` (a barrier, then rank 0): merge every rank's shard into the main store, remove the shards and
   print the summary: queries, rewritten, skipped by reason with their query ids (also ``rewrite_summary.json``
   in the run folder).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import lightning as L

from vlforge.common.errors import VLForgeError
from vlforge.common.lm.generated_store import failures, pending_ids, update_failures
from vlforge.common.lm.model import GenerativeModel
from vlforge.common.lm.policy import LoraSettings
from vlforge.common.lm.shards import ShardWriter
from vlforge.common.records import ImageRecord
from vlforge.common.rewrites import queries_of, rewrites_by_query
from vlforge.common.store import CaptionStore
from vlforge.rewriter.predict_data import QueryRewriteDataModule
from vlforge.rewriter.rewrite_batch import RewriteSettings, rewrite_records

SUMMARY_FILE = "rewrite_summary.json"


class RewriterPredictLitModule(L.LightningModule):
    """A rewriter policy writing into the data module's store.

    ``policy``: a preset (``preset:llama_tiny``), hub name or folder of a causal LM; ``checkpoint``: a vlforge
    LitModule checkpoint whose ``model.*`` weights the policy takes (SFT / PRO / PPO; ``lora``: the LoRA settings it
    was trained with, if any). ``rewrite``: name, instruction, decoding, seed, limits (:class:`RewriteSettings`;
    ``source`` and ``checkpoint`` are filled in). ``generate_batch_size``: queries per ``generate`` call.
    ``shard_root``: where the per-rank shard stores live (default ``<store>.generation-shards``).
    """

    def __init__(self, policy: str = "preset:llama_tiny", checkpoint: str | None = None,
                 rewrite: RewriteSettings | None = None, lora: LoraSettings | None = None,
                 generate_batch_size: int = 16, shard_root: str | None = None, dtype: str = "float32") -> None:
        super().__init__()
        self.save_hyperparameters()
        settings = rewrite or RewriteSettings()
        self.settings = RewriteSettings(**{**settings.__dict__, "source": policy, "checkpoint": checkpoint})
        if self.settings.name == self.settings.query_source:
            raise VLForgeError(f"rewriter name {self.settings.name!r} is the queries' own source; choose another")
        built = GenerativeModel(policy, kind="causal_lm", lora=lora, dtype=dtype, weights=checkpoint)
        self.model, self.processor = built.model.eval(), built.processor
        self._writer: ShardWriter | None = None
        self._ready = False

    @property
    def name(self) -> str:
        return self.settings.name

    def setup(self, stage: str) -> None:
        if stage != "predict":
            raise VLForgeError("RewriterPredictLitModule only predicts; run `vlforge-rewriter predict`")
        data = self.trainer.datamodule
        if not isinstance(data, QueryRewriteDataModule):
            raise VLForgeError("RewriterPredictLitModule needs a QueryRewriteDataModule as data")
        self._writer = ShardWriter(data.store, self.name, self.global_rank, self.hparams.shard_root,
                                   {"rewriter": self.name})
        if self.trainer.is_global_zero:
            self._writer.merge()
            with CaptionStore(self._writer.store_path, readonly=False) as store:
                retried = [qid for i in pending_ids(store, data.split, self.name, data.limit)
                           for qid, _ in queries_of(store.get(i), self.settings.query_source, self.settings.query_kind)]
                update_failures(store, self.name, {}, retried)
        self.trainer.strategy.barrier("rewriter-predict-setup")
        with CaptionStore(self._writer.store_path, readonly=True) as store:
            data.select(pending_ids(store, data.split, self.name, data.limit))
        self._ready = True

    def predict_step(self, batch: list[ImageRecord], batch_idx: int) -> None:
        out = rewrite_records(self.model, self.processor, batch, self.settings, self.hparams.generate_batch_size)
        self._writer.write(batch, out.captions, out.failed, out.rewritten)

    def teardown(self, stage: str) -> None:
        if stage != "predict" or not self._ready:
            return
        self._writer.close()
        self.trainer.strategy.barrier("rewriter-predict-merge")
        log_dir = self.trainer.log_dir  # a collective under DDP: every rank asks
        if self.trainer.is_global_zero:
            self._writer.merge()
            summary = self.summary()
            skipped = ", ".join(f"{k} {v}" for k, v in summary["skipped_by_reason"].items()) or "none"
            print(f"vlforge-rewriter predict: {summary['queries']} queries of split {summary['split']!r}, "
                  f"{summary['rewritten']} rewritten by {self.name!r}, skipped: {skipped}", file=sys.stderr)
            if log_dir:
                Path(log_dir).mkdir(parents=True, exist_ok=True)
                (Path(log_dir) / SUMMARY_FILE).write_text(json.dumps(summary, indent=2) + "\n")
        self._ready = False

    def summary(self) -> dict[str, Any]:
        """Queries of the split (within the limit), how many have a rewrite, the skipped ones by reason and id."""
        data = self.trainer.datamodule
        with CaptionStore(self._writer.store_path, readonly=True) as store:
            ids = store.ids(data.split)
            ids = ids if data.limit is None else ids[:data.limit]
            queries, rewritten = [], 0
            for image_id in ids:
                record = store.get(image_id)
                done = rewrites_by_query(record, self.name)
                for qid, _ in queries_of(record, self.settings.query_source, self.settings.query_kind):
                    queries.append(qid)
                    rewritten += qid in done
            wanted = set(queries)
            failed = {q: r for q, r in failures(store, self.name).items() if q in wanted}
        return {"store": self._writer.store_path, "split": data.split, "rewriter": self.name, "queries": len(queries),
                "rewritten": rewritten, "skipped_by_reason": dict(sorted(Counter(failed.values()).items())),
                "skipped": [{"query_id": q, "reason": r} for q, r in sorted(failed.items())]}
