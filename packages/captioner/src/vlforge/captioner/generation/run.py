"""``generate_into_store``: run several captioners over one split of a store in this process (no Lightning).

For each captioner in turn: build it, find the split's images it has not captioned yet, and caption them in
chunks of ``chunk_batches`` batches; each chunk is one ``append_captions`` transaction (plus one info update
when images failed or earlier failures now succeeded), so a killed run loses at most its open chunk and the
next run resumes. For several processes or GPUs, use the Lightning predict path (``vlforge-captioner
predict``) instead.
"""

from __future__ import annotations

import gc
import logging
import os
import time
from dataclasses import asdict, dataclass

from vlforge.captioner.generation.spec import CaptionerSpec, GenerationConfig, build_captioner
from vlforge.captioner.generation.store_io import (
    PendingImage,
    caption_batch,
    default_shear_tokens,
    pending_ids,
    prepare,
    update_failures,
)
from vlforge.common.progress import Progress
from vlforge.common.sentences import resolve_splitter
from vlforge.common.store import CaptionStore

log = logging.getLogger(__name__)


@dataclass
class GenerationSummary:
    """What one captioner did in one run."""

    name: str
    pending: int
    captioned: int
    empty: int
    failed: int
    shear_tokens: int | None
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def resolve_shear_tokens(store: CaptionStore, config: GenerationConfig) -> int | None:
    """T: the config's ``shear_tokens``, else the store's mean alt-text length; None when shearing is off."""
    if not config.shear:
        return None
    return config.shear_tokens if config.shear_tokens is not None else default_shear_tokens(store)


def generate_into_store(
    store_path: str | os.PathLike, config: GenerationConfig, chunk_batches: int = 4
) -> list[GenerationSummary]:
    """Caption ``config.split`` of the store with every captioner of ``config``; returns one summary each."""
    with CaptionStore(store_path, readonly=False) as store:
        shear_tokens = resolve_shear_tokens(store, config)
        splitter = resolve_splitter(config.sentence_splitter, store.info)
        return [run_captioner(store, spec, config, shear_tokens, chunk_batches, splitter)
                for spec in config.captioners]


def run_captioner(
    store: CaptionStore,
    spec: CaptionerSpec,
    config: GenerationConfig,
    shear_tokens: int | None,
    chunk_batches: int = 4,
    splitter: str = "regex",
) -> GenerationSummary:
    """Caption the images of the split that ``spec`` has not captioned yet."""
    start = time.perf_counter()
    fmt = spec.caption_format()
    ids = pending_ids(store, config.split, spec.name, config.limit)
    summary = GenerationSummary(spec.name, len(ids), 0, 0, 0, shear_tokens, 0.0)
    if ids:
        captioner = build_captioner(spec)
        chunk = config.batch_size * chunk_batches
        progress = Progress(f"generate {spec.name}", len(ids), "images")
        for begin in range(0, len(ids), chunk):
            ready: list[PendingImage] = []
            failed: dict[str, str] = {}
            for image_id in ids[begin : begin + chunk]:
                prepared = prepare(store, store.get(image_id), fmt)
                if isinstance(prepared, str):
                    failed[image_id] = prepared
                else:
                    ready.append(prepared)
            captions = caption_batch(captioner, spec, fmt, ready, shear_tokens, config.batch_size, splitter)
            store.append_captions(captions)
            update_failures(store, spec.name, failed, captions)
            summary.captioned += len(captions)
            summary.empty += sum(1 for texts in captions.values() for c in texts if not c.text)
            summary.failed += len(failed)
            progress.update(len(ready) + len(failed))
            log.info("%s: %d / %d images", spec.name, begin + len(ready) + len(failed), len(ids))
        progress.close()
        del captioner
        gc.collect()
    summary.seconds = round(time.perf_counter() - start, 3)
    return summary
