"""Loading images + captions: vlforge's ``CaptionDataset`` over an LMDB store with embedded images, against
WebDataset shards of the same images and captions (the ``webdataset`` package) and against a folder of image files
with a JSON list, side by side, interleaved.

Each run is a fresh process (so start-up and peak RSS are its own) that reads one shuffled epoch of the
ShapesWorld pool split through a torch DataLoader (batch 64, ``--workers`` 0 or 2), decoding every image and
applying the same transform (RandomResizedCrop to the image size, ToTensor, Normalize). Reported per run:
start-up = from before the dataset is made to the first batch in hand; images/s = images after the first batch /
time after the first batch; peak RSS of the main process (ru_maxrss; every library is imported in every run,
whatever the format) and the largest sum of the workers' RSS, sampled every 5 batches. Runs go round the formats
in a rotating order, ``--repeats`` times per worker count; ratios are taken within each round (pairs).

The store side reads its records without ``meta`` (``CaptionDataset(..., meta=False)``: images and captions, what
the other two sides carry). WebDataset's shuffle is its usual approximation (shards shuffled, then a 1,000-sample
buffer); the store and the folder shuffle exactly (a random permutation of indices), which is also what gives them
random access.

    python bench/loader_peers.py --images 3000 --repeats 5 --out bench/results/loader_peers.json
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

FORMATS = ("lmdb", "wds", "folder")
SHARD_SIZE = 500
SPLIT = "pool"  # the largest ShapesWorld split


def export_peers(store_path: Path, workdir: Path) -> None:
    """WebDataset shards (key.png + key.txt) and a folder of files + a JSON list, from the store's pool split."""
    from vlforge.common.store import CaptionStore

    store = CaptionStore(store_path, readonly=True)
    (workdir / "wds").mkdir(parents=True, exist_ok=True)
    (workdir / "folder" / "images").mkdir(parents=True, exist_ok=True)
    entries, tar, count = [], None, 0
    for record in store.iter_records(SPLIT):
        caption = record.captions[0].text
        if count % SHARD_SIZE == 0:
            if tar is not None:
                tar.close()
            tar = tarfile.open(workdir / "wds" / f"shard-{count // SHARD_SIZE:05d}.tar", "w")
        key = f"{count:07d}"
        for name, data in ((f"{key}.png", record.image_bytes), (f"{key}.txt", caption.encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        (workdir / "folder" / "images" / f"{key}.png").write_bytes(record.image_bytes)
        entries.append({"image": f"images/{key}.png", "caption": caption})
        count += 1
    tar.close()
    (workdir / "folder" / "annotations.json").write_text(json.dumps(entries))


def make_transform(size: int):
    from torchvision import transforms

    return transforms.Compose([transforms.RandomResizedCrop(size, scale=(0.8, 1.0)), transforms.ToTensor(),
                               transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])


def build_loader(fmt: str, workdir: Path, store_path: Path, workers: int, size: int):
    import torch
    from torch.utils.data import DataLoader, Dataset

    transform = make_transform(size)
    common = {"batch_size": 64, "num_workers": workers}
    if fmt == "lmdb":
        from vlforge.common.store import CaptionDataset
        from vlforge.common.store.dataset import collate_image_records

        dataset = CaptionDataset(store_path, split=SPLIT, transform=transform, meta=False)  # image + captions
        return DataLoader(dataset, shuffle=True, collate_fn=collate_image_records, **common)
    if fmt == "wds":
        import webdataset as wds

        shards = sorted(str(p) for p in (workdir / "wds").glob("*.tar"))
        dataset = (wds.WebDataset(shards, shardshuffle=len(shards), empty_check=False).shuffle(1000)
                   .decode("pil").to_tuple("png", "txt").map_tuple(lambda im: transform(im.convert("RGB")), str))
        return DataLoader(dataset, **common)

    class FolderDataset(Dataset):
        def __init__(self, root: Path) -> None:
            self.root = root
            self.entries = json.loads((root / "annotations.json").read_text())

        def __len__(self) -> int:
            return len(self.entries)

        def __getitem__(self, index: int):
            from PIL import Image

            entry = self.entries[index]
            with Image.open(self.root / entry["image"]) as image:
                return transform(image.convert("RGB")), entry["caption"]

    torch.manual_seed(0)
    return DataLoader(FolderDataset(workdir / "folder"), shuffle=True, **common)


def one_run(fmt: str, workdir: Path, store_path: Path, workers: int, size: int) -> dict:
    import psutil
    import torch
    import torchvision  # noqa: F401 - every library imported before the clock starts, whatever the format
    import webdataset  # noqa: F401

    import vlforge.common.store.dataset  # noqa: F401

    torch.set_num_threads(1)
    me = psutil.Process()
    start = time.perf_counter()
    loader = build_loader(fmt, workdir, store_path, workers, size)
    iterator = iter(loader)
    first = next(iterator)
    first_at = time.perf_counter()
    images, worker_rss = 0, 0
    for step, batch in enumerate(iterator):
        images += len(batch[0])
        if step % 5 == 0:
            worker_rss = max(worker_rss, sum(c.memory_info().rss for c in me.children()))
    end = time.perf_counter()
    del iterator
    return {"startup_s": first_at - start, "images_per_s": images / (end - first_at), "images": images + len(first[0]),
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "worker_peak_rss_mib": worker_rss / 2**20}


def load() -> float:
    return os.getloadavg()[0]


def summary(runs: list[dict], key: str) -> dict:
    values = [r[key] for r in runs]
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", type=int, default=64, help="transform output size (ShapesWorld images are 64 px)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/vlforge-loader-peers"))
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--one-run", nargs=2, metavar=("FORMAT", "WORKERS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    store_path = args.workdir / "store"
    if args.one_run:
        print(json.dumps(one_run(args.one_run[0], args.workdir, store_path, int(args.one_run[1]), args.size)))
        return
    if not store_path.exists():
        subprocess.run([sys.executable, "-c", "from vlforge.common.store_cli import main; main()", "shapes",
                        str(store_path), "--num-images", str(args.images), "--seed", "0", "--workers", "1"], check=True)
        export_peers(store_path, args.workdir)
    rng = random.Random(0)
    rounds = []
    for workers in (0, 2):
        for repeat in range(args.repeats):
            order = list(FORMATS)
            rng.shuffle(order)
            result = {"workers": workers, "repeat": repeat, "order": order, "load_before": load()}
            for fmt in order:
                done = subprocess.run([sys.executable, __file__, "--workdir", str(args.workdir), "--size",
                                       str(args.size), "--out", "-", "--one-run", fmt, str(workers)],
                                      capture_output=True, text=True, check=True,
                                      env=dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1"))
                result[fmt] = json.loads(done.stdout.strip().splitlines()[-1])
            result["load_after"] = load()
            print(json.dumps(result), flush=True)
            rounds.append(result)
    report = {"command": " ".join(sys.argv), "images_in_split": rounds[0]["lmdb"]["images"], "rounds": rounds,
              "summary": {}}
    for workers in (0, 2):
        mine = [r for r in rounds if r["workers"] == workers]
        entry = {fmt: {key: summary([r[fmt] for r in mine], key) for key in
                       ("images_per_s", "startup_s", "peak_rss_mib", "worker_peak_rss_mib")} for fmt in FORMATS}
        for peer in ("wds", "folder"):
            entry[f"lmdb_over_{peer}_images_per_s"] = summary(
                [{"r": r["lmdb"]["images_per_s"] / r[peer]["images_per_s"]} for r in mine], "r")
        entry["load"] = summary([{"l": r["load_before"]} for r in mine] + [{"l": r["load_after"]} for r in mine], "l")
        report["summary"][f"workers_{workers}"] = entry
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report["summary"], indent=1))


if __name__ == "__main__":
    main()
