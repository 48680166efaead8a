"""Generating ShapesWorld records and writing them to a caption store.

Every record is a pure function of (seed, index, config): its random streams are seeded from
``"shapesworld/<seed>/<index>/<stream>"``, so the output is byte-identical for a seed whatever the number of
worker processes, and records can be made in any order.

Each record carries every caption kind: ``gt`` short, descriptive and dense captions, ``alt_text`` (kind
"free"), ``gt`` negatives and hard queries, plus ``meta["scene_graph"]``, ``meta["atomic_facts"]`` and
``meta["qa"]``. The store holds them all in every split; which sources a training run may see (e.g. only
alt-text in the pool split, ground truth in the seed split for captioner SFT) is the data config's business,
not the generator's.
"""

from __future__ import annotations

import multiprocessing
import os
import random
from collections.abc import Iterator
from typing import Any

from vlforge.common.errors import VLForgeError
from vlforge.common.progress import track
from vlforge.common.records import Caption, ImageRecord
from vlforge.common.shapes.alt_text import alt_text_caption
from vlforge.common.shapes.captions import dense_caption, descriptive_plan, render_plan, short_plan
from vlforge.common.shapes.config import ShapesWorldConfig
from vlforge.common.shapes.facts import atomic_facts
from vlforge.common.shapes.negatives import negatives_for
from vlforge.common.shapes.qa import qa_pairs
from vlforge.common.shapes.queries import hard_queries
from vlforge.common.shapes.render import encode_png, render_scene
from vlforge.common.shapes.scene import sample_scene
from vlforge.common.shapes.splits import split_of

GENERATOR = "shapesworld"
GENERATOR_VERSION = 1
CHUNK = 256
SERIAL_BELOW = 2000


def image_id_for(seed: int, index: int) -> str:
    return f"shapes-s{seed}-{index:08d}"


def _rng(seed: int, index: int, stream: str) -> random.Random:
    return random.Random(f"{GENERATOR}/{seed}/{index}/{stream}")


def make_record(index: int, seed: int, config: ShapesWorldConfig) -> ImageRecord:
    """The ``index``-th ShapesWorld record of ``seed``."""
    scene = sample_scene(_rng(seed, index, "scene"), config)
    text_rng = _rng(seed, index, "captions")
    made = {"generator": GENERATOR}
    short = short_plan(text_rng, scene)
    descriptive = descriptive_plan(text_rng, scene)
    positives = [Caption(text=render_plan(plan, scene["objects"], scene["background"]), source="gt",
                         kind=plan["kind"], provenance=dict(made, template=plan["template"]))
                 for plan in (short, descriptive)]
    captions = positives + [Caption(text=dense_caption(text_rng, scene), source="gt", kind="dense",
                                    provenance=dict(made))]
    captions.append(alt_text_caption(_rng(seed, index, "alt_text"), scene, config,
                                     lambda: sample_scene(_rng(seed, index, "mismatch"), config)))
    negative_rng = _rng(seed, index, "negatives")
    for positive, plan in zip(positives, (short, descriptive)):
        captions.extend(negatives_for(negative_rng, positive, plan, scene, config.shapes))
    captions.extend(hard_queries(_rng(seed, index, "queries"), scene))
    meta = {"generator": GENERATOR, "seed": seed, "index": index, "scene_graph": scene,
            "atomic_facts": atomic_facts(scene),
            "qa": qa_pairs(_rng(seed, index, "qa"), scene, config.shapes, config.colours)}
    return ImageRecord(image_id=image_id_for(seed, index),
                       split=split_of(seed, index, config.split_fractions), width=config.image_size,
                       height=config.image_size, captions=captions,
                       image_bytes=encode_png(render_scene(scene)), meta=meta)


def _make_chunk(job: tuple[int, int, int, dict[str, Any]]) -> list[ImageRecord]:
    start, stop, seed, knobs = job
    config = ShapesWorldConfig(**knobs)
    return [make_record(i, seed, config) for i in range(start, stop)]


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _jobs(num_images: int, seed: int, config: ShapesWorldConfig,
          start: int) -> list[tuple[int, int, int, dict[str, Any]]]:
    if num_images < 0:
        raise VLForgeError(f"num_images must be >= 0, got {num_images}")
    return [(a, min(a + CHUNK, start + num_images), seed, config.to_dict())
            for a in range(start, start + num_images, CHUNK)]


def _pool(workers: int | None, num_images: int):
    """A process pool, or None for one worker or one chunk. By default (``workers=None``) jobs under
    ``SERIAL_BELOW`` images run in this process and larger ones use every available CPU."""
    if workers is None:
        workers = default_workers() if num_images >= SERIAL_BELOW else 1
    if workers < 1:
        raise VLForgeError(f"workers must be >= 1, got {workers}")
    if workers == 1 or num_images <= CHUNK:
        return None
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else None).Pool(workers)


def _run(jobs: list, pool) -> Iterator[ImageRecord]:
    chunks = pool.imap(_make_chunk, jobs) if pool is not None else map(_make_chunk, jobs)
    for chunk in chunks:
        yield from chunk


def generate_records(num_images: int, seed: int, config: ShapesWorldConfig | None = None,
                     workers: int | None = None, start: int = 0) -> Iterator[ImageRecord]:
    """Records ``start .. start+num_images-1`` in index order, made by ``workers`` processes (see ``_pool``
    for the default). The output does not depend on ``workers``."""
    config = config or ShapesWorldConfig()
    jobs = _jobs(num_images, seed, config, start)
    pool = _pool(workers, num_images)
    try:
        yield from _run(jobs, pool)
    finally:
        if pool is not None:
            pool.terminate()


def build_shapes_store(path: str | os.PathLike, num_images: int, seed: int, image_size: int = 64,
                       workers: int | None = None, batch_size: int = 1000, **knobs: Any) -> dict[str, Any]:
    """Generate ``num_images`` ShapesWorld records (``**knobs``: any ``ShapesWorldConfig`` field) into the
    store at ``path``, created if needed; re-running with the same arguments adds nothing new. The store
    info's ``shapesworld`` entry records how it was made (generator, version, seed, number of images, every
    knob). Returns the store counts."""
    from vlforge.common.store import CaptionStore

    config = ShapesWorldConfig.from_knobs(image_size=image_size, **knobs)
    jobs = _jobs(num_images, seed, config, 0)
    pool = _pool(workers, num_images)  # forked before the store's LMDB environment is opened
    try:
        store = CaptionStore.create(path)
        try:
            store.set_info(shapesworld={"generator": GENERATOR, "generator_version": GENERATOR_VERSION,
                                        "seed": seed, "num_images": num_images, "knobs": config.to_dict()})
            records = track(_run(jobs, pool), "shapes", num_images, "images")
            store.put_records(records, batch_size=batch_size)
            return store.counts()
        finally:
            store.close()
    finally:
        if pool is not None:
            pool.terminate()
