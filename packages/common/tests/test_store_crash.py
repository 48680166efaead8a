"""A writer SIGKILLed at random moments leaves a store that opens, verifies and holds exactly the committed
transactions; running the same writer again completes it without duplicating anything."""

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from vlforge.common.store import CaptionStore
from vlforge.common.store.verify import verify_store

BATCH = 150
TRANSACTIONS = 10
VAL_PER_BATCH = len(range(0, BATCH, 4))

# Transaction t (0-based): even t puts batch t//2 (BATCH new records, 2 captions each; the store is created with
# a tiny map so it also grows while being killed); odd t appends one dense caption to every record of batch t//2.
WRITER = textwrap.dedent(f"""
    import io, sys
    from PIL import Image
    from vlforge.common.records import Caption, ImageRecord
    from vlforge.common.store import CaptionStore
    buf = io.BytesIO(); Image.new("RGB", (8, 8), (9, 9, 9)).save(buf, "PNG"); png = buf.getvalue()
    store = CaptionStore.create(sys.argv[1], map_size=64 << 10)
    for t in range({TRANSACTIONS}):
        b = t // 2
        ids = [f"b{{b:02d}}-{{k:03d}}" for k in range({BATCH})]
        if t % 2 == 0:
            store.put_records([ImageRecord(i, "val" if k % 4 == 0 else "train", 8, 8,
                                           [Caption(f"gt {{i}}", "gt", "short"), Caption(f"alt {{i}}", "alt_text")],
                                           image_bytes=png, meta={{"batch": b}}) for k, i in enumerate(ids)],
                              batch_size={BATCH})
        else:
            store.append_captions({{i: [Caption(f"dense {{i}}", "capt", "dense")] for i in ids}})
        print(t, flush=True)
    if sys.argv[2:] == ["--linger"]:  # stay alive after the last commit, so that the kill always finds the writer
        import time
        time.sleep(300)
""")


def expected_counts(committed: int) -> dict:
    puts, appends = (committed + 1) // 2, committed // 2
    images = BATCH * puts
    return {"images": images, "captions": 2 * images + BATCH * appends,
            "splits": {k: v for k, v in {"train": puts * (BATCH - VAL_PER_BATCH), "val": puts * VAL_PER_BATCH}.items()
                       if v},
            "by_source": {k: v for k, v in {"gt": images, "alt_text": images, "capt": BATCH * appends}.items() if v},
            "by_kind": {k: v for k, v in {"short": images, "free": images, "dense": BATCH * appends}.items() if v}}


def check_whole_transactions(path, committed: int) -> None:
    with CaptionStore(path) as store:
        assert store.counts() == expected_counts(committed)
        report = verify_store(store)
        assert report.ok, report.problems[:5]
        for record in store.iter_records():
            batch = record.meta["batch"]
            has_dense = any(c.kind == "dense" for c in record.captions)
            assert has_dense == (2 * batch + 1 < committed), record.image_id
            assert len(record.captions) == 2 + has_dense


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_sigkilled_writer_leaves_exactly_the_committed_transactions(tmp_path, seed):
    rng = random.Random(seed)
    path = tmp_path / "s"
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(path), "--linger"], stdout=subprocess.PIPE, text=True)
    wait_for = rng.randint(0, TRANSACTIONS - 2)
    for _ in range(wait_for):
        assert child.stdout.readline().strip()
    time.sleep(rng.uniform(0.0, 0.03))
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    printed = wait_for + len(child.stdout.read().split())
    if not (path / "data.mdb").exists():
        assert printed == 0  # killed before the store existed
    else:
        with CaptionStore(path) as store:
            images = store.counts()["images"]
            committed = [n for n in (printed, printed + 1) if expected_counts(n) == store.counts()]
        assert committed, f"counts after {printed} printed commits: {images} images"
        check_whole_transactions(path, committed[0])

    rerun = subprocess.run([sys.executable, "-c", WRITER, str(path)], capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    check_whole_transactions(path, TRANSACTIONS)
