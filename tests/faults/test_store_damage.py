"""Damaged data.mdb (truncated at several offsets; bytes overwritten in pages at several offsets) and concurrent
writers on one store. A damaged store is a one-line error or a list of problems naming the damage -- never a crash
(SIGBUS/SIGSEGV), never a traceback; concurrent ingests (one of them failing) end with every good record once."""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import subprocess
import sys

import pytest
from PIL import Image

from vlforge.common.records import Caption, ImageRecord
from vlforge.common.store import CaptionStore
from vlforge.common.store.verify import verify_store

pytestmark = pytest.mark.faults
CLI = "import sys; from vlforge.common.store_cli import main; sys.exit(main(sys.argv[1:]))"
OFFSETS = 6


def _noise_png(seed: int) -> bytes:
    rng = random.Random(seed)
    img = Image.frombytes("RGB", (24, 24), bytes(rng.randrange(256) for _ in range(24 * 24 * 3)))
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    path = tmp_path_factory.mktemp("damage") / "s"
    with CaptionStore.create(path) as store:
        store.put_records([ImageRecord(f"r{i:03d}", "train", 24, 24, [Caption(f"caption {i}", "gt")],
                                       image_bytes=_noise_png(i)) for i in range(120)])
    return path


def _cli(*args):
    return subprocess.run([sys.executable, "-c", CLI, *map(str, args)], capture_output=True, text=True, timeout=120)


def _check_damaged(store, tmp_path) -> bool:
    """Every command ends in a one-line error, named problems or a result (damage no read notices); never a signal
    or a traceback. Returns whether the damage was detected."""
    detected = False
    for command in (["stats", store], ["verify", store], ["export", store, "--format", "jsonl", "--out",
                                                          tmp_path / "out.jsonl"]):
        proc = _cli(*command)
        assert proc.returncode in (0, 1, 2), (command, proc.returncode, proc.stderr[-500:])  # no signal
        assert "Traceback" not in proc.stderr, (command, proc.stderr[-2000:])
        if proc.returncode == 2:
            assert len(proc.stderr.strip().splitlines()) == 1 and "vlforge-store: error:" in proc.stderr
        detected |= proc.returncode != 0
    return detected


def test_truncated_data_file_at_several_offsets(faults, pristine, tmp_path):
    size = os.path.getsize(pristine / "data.mdb")
    rng = random.Random(f"{faults.seed}-truncate")
    cuts = sorted(rng.randrange(0, size) for _ in range(OFFSETS))
    for cut in cuts:
        store = tmp_path / f"cut{cut}"
        shutil.copytree(pristine, store)
        os.truncate(store / "data.mdb", cut)
        assert _check_damaged(store, tmp_path), cut  # truncation is always detected, before any page is read
    faults.record("damage", "truncated data.mdb", faults=len(cuts), detected=len(cuts), records_lost=0)


def test_overwritten_pages_at_several_offsets(faults, pristine, tmp_path):
    size = os.path.getsize(pristine / "data.mdb")
    rng = random.Random(f"{faults.seed}-pages")
    detected = silently_changed = 0
    expected = _cli("export", pristine, "--format", "jsonl", "--out", tmp_path / "expected.jsonl")
    assert expected.returncode == 0
    for k in range(OFFSETS):
        offset = rng.randrange(2 * 4096, size - 64)
        store = tmp_path / f"page{k}"
        shutil.copytree(pristine, store)
        with open(store / "data.mdb", "r+b") as f:
            f.seek(offset)
            f.write(bytes(rng.randrange(256) for _ in range(64)))
        if _check_damaged(store, tmp_path):
            detected += 1
        elif (tmp_path / "out.jsonl").read_bytes() != (tmp_path / "expected.jsonl").read_bytes():
            silently_changed += 1  # LMDB keeps no checksums: bytes of a caption that still decode go unnoticed
    faults.record("damage", "overwritten bytes in data.mdb pages", faults=OFFSETS, detected=detected,
                  silently_changed=silently_changed)


WRITER = """
import sys
from vlforge.common.store_cli import main
sys.exit(main(["ingest", sys.argv[1], "--format", "jsonl", "--annotations", sys.argv[2], "--batch-size", "5"]))
"""


def test_concurrent_ingests_on_one_new_store_one_failing(faults, tmp_path):
    (tmp_path / "imgs").mkdir()
    for i in range(90):
        (tmp_path / "imgs" / f"{i}.png").write_bytes(_noise_png(1000 + i))
    files = []
    for w, ids in enumerate((range(0, 40), range(30, 70), range(60, 90))):  # overlapping ids, same images
        path = tmp_path / f"w{w}.jsonl"
        path.write_text("".join(json.dumps({"image": f"imgs/{i}.png", "caption": f"w{w} says {i}"}) + "\n"
                                for i in ids))
        files.append(path)
    (tmp_path / "bad.jsonl").write_text("not json\n" * 50)
    rounds = 3
    for round_ in range(rounds):
        store = tmp_path / f"store{round_}"
        procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(store), str(f)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True) for f in [tmp_path / "bad.jsonl", *files]]
        results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
        assert results[0][0] == 2 and all(code == 0 for code, _ in results[1:]), results
        with CaptionStore(store) as s:
            assert verify_store(s).ok and len(s) == 90
            for w, ids in enumerate((range(0, 40), range(30, 70), range(60, 90))):
                for i in ids:
                    texts = [c.text for c in s.get(f"imgs/{i}.png").captions]
                    assert texts.count(f"w{w} says {i}") == 1
    faults.record("concurrency", "4 ingests at once on a new store, one failing", faults=rounds,
                  runs=4 * rounds, records_lost=0, records_duplicated=0)
