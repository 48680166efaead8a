"""Crash safety of ingest: an ingest killed with SIGKILL mid-run leaves a store that opens, verifies and holds
only whole committed batches; running the same ingest again completes it without duplicating anything."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from PIL import Image

from vlforge.common.ingest import ingest
from vlforge.common.store import CaptionStore
from vlforge.common.store.verify import verify_store
from vlforge.common.store_cli import main

N_IMAGES, BATCH = 240, 4
CLI = "import sys; from vlforge.common.store_cli import main; sys.exit(main(sys.argv[1:]))"


def write_dataset(root: Path) -> Path:
    """N_IMAGES tiny PNGs and a JSON-lines file with two captions each (ids are the image paths)."""
    (root / "imgs").mkdir(parents=True)
    lines = []
    for i in range(N_IMAGES):
        buf = io.BytesIO()
        Image.new("RGB", (8, 8), (i % 256, 0, 0)).save(buf, "PNG")
        (root / "imgs" / f"{i:04d}.png").write_bytes(buf.getvalue())
        captions = [f"image {i}", f"picture number {i}"]
        lines.append(json.dumps({"image": f"imgs/{i:04d}.png", "caption": captions}))
    ann = root / "pairs.jsonl"
    ann.write_text("\n".join(lines) + "\n")
    return ann


def ingest_args(store: Path, ann: Path) -> list[str]:
    return ["ingest", str(store), "--format", "jsonl", "--annotations", str(ann), "--batch-size", str(BATCH)]


def kill_after_commits(store: Path, ann: Path, commits: int) -> None:
    """Run the CLI in a subprocess and SIGKILL it as soon as it has logged ``commits`` committed batches."""
    proc = subprocess.Popen([sys.executable, "-c", CLI, "-v", *ingest_args(store, ann)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen = 0
    try:
        for log_line in proc.stderr:
            seen += "committed" in log_line
            if seen == commits:
                os.kill(proc.pid, signal.SIGKILL)
                break
    finally:
        proc.wait(timeout=60)
        proc.stderr.close()
    assert seen == commits and proc.returncode == -signal.SIGKILL


def snapshot(store: CaptionStore) -> dict[str, list[str]]:
    return {r.image_id: [c.text for c in r.captions] for r in store.iter_records()}


def test_killed_ingest_rerun_completes_without_duplicates(tmp_path):
    ann = write_dataset(tmp_path / "data")
    reference = CaptionStore.create(tmp_path / "reference")
    ingest(reference, "jsonl", ann)
    expected = snapshot(reference)

    path = tmp_path / "store"
    kill_after_commits(path, ann, commits=3)
    killed = CaptionStore(path)
    assert verify_store(killed).ok
    assert len(killed) % BATCH == 0 and len(killed) >= 3 * BATCH   # whole batches only, in input order
    assert snapshot(killed) == {k: expected[k] for k in sorted(expected)[: len(killed)]}
    killed.close()

    kill_after_commits(path, ann, commits=2)   # killed again, on a partly filled store
    assert main(ingest_args(path, ann)) == 0   # the rerun completes it
    done = CaptionStore(path)
    assert verify_store(done).ok
    assert snapshot(done) == expected
    assert done.counts()["images"] == N_IMAGES and done.counts()["captions"] == 2 * N_IMAGES
