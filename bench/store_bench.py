"""Benchmark: the LMDB caption store against one JSON annotation file loaded by every DataLoader worker.

For each dataset size (images x captions per image, no image bytes) it builds a CaptionStore and the common-practice
JSON file (a list with one {"image", "caption", "image_id"} entry per caption, as LAVIS' COCO files), then measures
  (a) random record reads per second in one process (CaptionStore.get on random ids),
  (b) dataset start-up time in a fresh process (CaptionDataset(...) + len + first record, vs json.load),
  (c) memory of 4 forked DataLoader workers after one full epoch in random order (USS, PSS and RSS per worker).
Every measurement of (b) and (c) runs in its own subprocess so nothing is shared by accident.

    python bench/store_bench.py --sizes 50000,200000 --captions 5 --workdir /tmp/vlforge-store-bench
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time

WORDS = ("a photo of the red small large circle square dog cat man woman street table with on in near under "
         "blue green bright dark wooden old new two three people sitting standing car tree house water sky").split()


def caption(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 16)))


def build(workdir: str, images: int, per_image: int) -> tuple[str, str, dict]:
    from vlforge.common.records import Caption, ImageRecord
    from vlforge.common.store import CaptionStore

    store_path = os.path.join(workdir, f"store_{images}")
    json_path = os.path.join(workdir, f"annotations_{images}.json")
    shutil.rmtree(store_path, ignore_errors=True)
    rng = random.Random(0)
    texts = [[caption(rng) for _ in range(per_image)] for _ in range(images)]
    t0 = time.perf_counter()
    store = CaptionStore.create(store_path, image_root=os.path.join(workdir, "images"))
    store.put_records((ImageRecord(f"{i:09d}", "train", 640, 480, [Caption(t, "gt", "short") for t in texts[i]],
                                   image_path=f"images/{i:09d}.jpg") for i in range(images)), batch_size=5000)
    store.close()
    build_store = time.perf_counter() - t0
    t0 = time.perf_counter()
    entries = [{"image": f"images/{i:09d}.jpg", "caption": t, "image_id": f"{i:09d}"}
               for i in range(images) for t in texts[i]]
    with open(json_path, "w") as f:
        json.dump(entries, f)
    build_json = time.perf_counter() - t0
    sizes = {"store_bytes": os.path.getsize(os.path.join(store_path, "data.mdb")),
             "json_bytes": os.path.getsize(json_path), "build_store_s": build_store, "build_json_s": build_json}
    return store_path, json_path, sizes


def random_reads(store_path: str, images: int, reads: int) -> dict:
    from vlforge.common.store import CaptionStore

    rng = random.Random(1)
    ids = [f"{rng.randrange(images):09d}" for _ in range(reads)]
    store = CaptionStore(store_path)
    store.get(ids[0])
    t0, c0 = time.perf_counter(), time.process_time()
    for image_id in ids:
        store.get(image_id)
    get_s, get_cpu = time.perf_counter() - t0, time.process_time() - c0
    ordinals = [rng.randrange(images) for _ in range(reads)]
    t0, c0 = time.perf_counter(), time.process_time()
    for n in ordinals:
        store.get_at("train", n)
    get_at_s, get_at_cpu = time.perf_counter() - t0, time.process_time() - c0
    store.close()
    # wall-clock rates suffer from other processes on a shared machine; CPU-time rates are what one core delivers
    return {"get_per_s": reads / get_s, "get_at_per_s": reads / get_at_s,
            "get_per_cpu_s": reads / get_cpu, "get_at_per_cpu_s": reads / get_at_cpu}


def child(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- subprocess measurements
def _startup(kind: str, path: str) -> dict:
    if kind == "lmdb":
        from vlforge.common.store import CaptionDataset

        t0 = time.perf_counter()
        dataset = CaptionDataset(path, split="train")
        n = len(dataset)
        dataset.record(0)
    else:
        t0 = time.perf_counter()
        with open(path) as f:
            entries = json.load(f)
        n = len(entries)
        entries[0]["caption"]
    return {"startup_s": time.perf_counter() - t0, "items": n}


def _worker_memory(kind: str, path: str, workers: int) -> dict:
    import psutil
    import torch
    from torch.utils.data import DataLoader, Dataset

    from vlforge.common.store import CaptionDataset

    class StoreCaptions(Dataset):
        """Per image: the record (captions, path) from the store; no image decoding (there are no images)."""

        def __init__(self, store_path: str):
            self.inner = CaptionDataset(store_path, split="train")

        def __len__(self) -> int:
            return len(self.inner)

        def __getitem__(self, i: int) -> int:
            return len(self.inner.record(i).captions[0].text)

    class JsonCaptions(Dataset):
        """The common practice: the whole annotation list loaded in __init__, inherited by forked workers."""

        def __init__(self, json_path: str):
            with open(json_path) as f:
                self.entries = json.load(f)

        def __len__(self) -> int:
            return len(self.entries)

        def __getitem__(self, i: int) -> int:
            return len(self.entries[i]["caption"])

    dataset = StoreCaptions(path) if kind == "lmdb" else JsonCaptions(path)
    loader = DataLoader(dataset, batch_size=512, shuffle=True, num_workers=workers, persistent_workers=True,
                        multiprocessing_context="fork", collate_fn=lambda batch: sum(batch),
                        generator=torch.Generator().manual_seed(0))
    t0 = time.perf_counter()
    total = sum(loader)
    epoch_s = time.perf_counter() - t0
    procs = [p for p in psutil.Process().children(recursive=True)
             if p.pid in {w.pid for w in loader._iterator._workers}]  # noqa: SLF001 - the live worker processes
    infos = [p.memory_full_info() for p in procs]
    main = psutil.Process().memory_full_info()
    del loader
    mib = 1 << 20
    return {"workers": len(infos), "epoch_s": epoch_s, "items": len(dataset), "checksum": total,
            "uss_mib": statistics.mean(i.uss for i in infos) / mib,
            "pss_mib": statistics.mean(i.pss for i in infos) / mib,
            "rss_mib": statistics.mean(i.rss for i in infos) / mib,
            "main_uss_mib": main.uss / mib}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1].startswith("_"):
        op, kind, path, *rest = sys.argv[1:]
        result = _startup(kind, path) if op == "_startup" else _worker_memory(kind, path, int(rest[0]))
        print(json.dumps(result))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="50000,200000", help="comma-separated image counts")
    parser.add_argument("--captions", type=int, default=5, help="captions per image")
    parser.add_argument("--reads", type=int, default=200000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3, help="start-up measurements per kind (median)")
    parser.add_argument("--workdir", default="/tmp/vlforge-store-bench")
    args = parser.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    results = []
    for images in (int(s) for s in args.sizes.split(",")):
        store_path, json_path, row = build(args.workdir, images, args.captions)
        row.update(images=images, captions=images * args.captions)
        row.update(random_reads(store_path, images, args.reads))
        for kind, path in (("lmdb", store_path), ("json", json_path)):
            row[f"{kind}_startup_s"] = statistics.median(
                child(["_startup", kind, path])["startup_s"] for _ in range(args.repeats))
            row[f"{kind}_workers"] = child(["_worker_memory", kind, path, str(args.workers)])
        results.append(row)
        print(json.dumps(row), flush=True)
    print("\nimages captions | reads/s get, get_at (wall) | per CPU-second | start-up ms lmdb / json | "
          "worker USS MiB lmdb / json | worker PSS MiB lmdb / json")
    for r in results:
        lw, jw = r["lmdb_workers"], r["json_workers"]
        print(f"{r['images']} {r['captions']} | {r['get_per_s']:,.0f}, {r['get_at_per_s']:,.0f} | "
              f"{r['get_per_cpu_s']:,.0f}, {r['get_at_per_cpu_s']:,.0f} | "
              f"{r['lmdb_startup_s'] * 1e3:.1f} / {r['json_startup_s'] * 1e3:.1f} | "
              f"{lw['uss_mib']:.1f} / {jw['uss_mib']:.1f} | {lw['pss_mib']:.1f} / {jw['pss_mib']:.1f}")


if __name__ == "__main__":
    main()
