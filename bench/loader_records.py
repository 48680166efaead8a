"""What sending records back from DataLoader workers costs (issue 15, item 5: why the store's loader does not scale
with workers in ``bench/loader_peers.py``).

Two arms over the same ``CaptionDataset`` (the pool split of ``loader_peers.py``'s store, ``meta=False``, its
transform, batch 64, shuffled, 2 workers, 1 thread): ``records`` yields (image, record) and collates with
``collate_image_records``, as ``loader_peers.py`` does; ``ids`` yields (image, image id): the same reads, decodes and
transforms, but only a string goes back to the main process instead of the record (captions, provenance, PNG
bytes). Each measurement is ``--epochs`` epochs; the arms alternate in a shuffled order per round.

``--gc`` (both arms alike): ``on`` (Python's default), ``off`` (``gc.disable()`` in the main process before the
loaders start; the workers inherit it), ``freeze_workers`` (``gc.freeze()`` in each worker as it starts, so that
collections no longer traverse the objects inherited from the parent), ``freeze_main`` (``gc.freeze()`` in the main
process once its workers run).

    python bench/loader_peers.py --images 4000 --repeats 1 --workdir /tmp/perf8/lp --out /tmp/lp.json  # the store
    python bench/loader_records.py --store /tmp/perf8/lp/store --rounds 6 --gc MODE \
        --out bench/results/loader_records_gc_MODE.json     # MODE: on, off, freeze_workers, freeze_main
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from vlforge.common.store import CaptionDataset
from vlforge.common.store.dataset import collate_image_records

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_report import write_report  # noqa: E402
from loader_peers import SPLIT, load, make_transform, summary  # noqa: E402


class ImageAndId(Dataset):
    """``CaptionDataset``'s items with the record replaced by its image id."""

    def __init__(self, dataset: CaptionDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        image, record = self.dataset[index]
        return image, record.image_id


def freeze_in_worker(_: int) -> None:
    gc.freeze()


def images_per_s(arm: str, store: str, workers: int, epochs: int, gc_mode: str) -> float:
    init = freeze_in_worker if gc_mode == "freeze_workers" else None
    dataset = CaptionDataset(store, split=SPLIT, transform=make_transform(64), meta=False)
    if arm == "records":
        loader = DataLoader(dataset, batch_size=64, shuffle=True, num_workers=workers,
                            collate_fn=collate_image_records, persistent_workers=workers > 0, worker_init_fn=init)
    else:
        loader = DataLoader(ImageAndId(dataset), batch_size=64, shuffle=True, num_workers=workers,
                            persistent_workers=workers > 0, worker_init_fn=init)
    next(iter(loader))  # workers started, page cache warm
    if gc_mode == "freeze_main":
        gc.freeze()
    start, images = time.perf_counter(), 0
    for _ in range(epochs):
        for batch in loader:
            images += len(batch[0])
    return images / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--gc", choices=("on", "off", "freeze_workers", "freeze_main"), default="on")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.gc == "off":
        gc.disable()
    rng = random.Random(0)
    rounds = []
    for number in range(args.rounds):
        arms = ["records", "ids"]
        rng.shuffle(arms)
        row = {"round": number, "order": arms, "load_before": load()}
        for arm in arms:
            row[arm] = images_per_s(arm, args.store, args.workers, args.epochs, args.gc)
        row["load_after"] = load()
        row["records_over_ids"] = row["records"] / row["ids"]
        rounds.append(row)
        print(row, flush=True)
    write_report(Path(args.out), rounds, {key: summary(rounds, key) for key in ("records", "ids", "records_over_ids")})


if __name__ == "__main__":
    main()
