"""Shared by the fault-injection suite: run a vlforge console in a subprocess that SIGKILLs itself at a chosen store
write (before it, inside its open transaction after every put, or right after its commit), snapshot stores, and
count what was tried into $VLFORGE_FAULTS_LOG (JSON lines; ``scripts/reliability_report.py`` sums them)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from vlforge.common.store import CaptionStore
from vlforge.common.store.verify import verify_store

REPO = Path(__file__).resolve().parents[2]
TOY_DIR = REPO / "packages" / "common" / "tests" / "toy"
SEED = int(os.environ.get("VLFORGE_FAULTS_SEED", "16"))
PHASES = ("before", "inside", "after")

# Runs `main(argv)` of a console module (`function(argv)` for "module:function") with CaptionStore._write wrapped:
# at write number VLF_KILL_AT the process SIGKILLs itself in phase VLF_KILL_PHASE. The code under test is not
# changed; only the kill is injected. At a normal exit it prints the number of store writes it made (to pick kill
# points from a clean run).
KILLING_RUNNER = """
import atexit, importlib, os, signal, sys
from vlforge.common.store import lmdb_store
phase, at = os.environ.get("VLF_KILL_PHASE", ""), int(os.environ.get("VLF_KILL_AT", "0"))
calls = 0
original = lmdb_store.CaptionStore._write

def _write(self, fn):
    global calls
    calls += 1
    if calls == at and phase == "before":
        os.kill(os.getpid(), signal.SIGKILL)
    if calls == at and phase == "inside":
        def killing(txn, fn=fn):
            fn(txn)
            os.kill(os.getpid(), signal.SIGKILL)
        return original(self, killing)
    result = original(self, fn)
    if calls == at and phase == "after":
        os.kill(os.getpid(), signal.SIGKILL)
    return result

lmdb_store.CaptionStore._write = _write
atexit.register(lambda: print(f"VLF_WRITES={calls}", file=sys.stderr, flush=True))
module, _, function = sys.argv[1].partition(":")
sys.exit(getattr(importlib.import_module(module), function or "main")(sys.argv[2:]))
"""


def run_console(module: str, argv: list[str], kill_at: int = 0, phase: str = "", timeout: float = 300,
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environ = dict(os.environ if env is None else env, VLF_KILL_AT=str(kill_at), VLF_KILL_PHASE=phase)
    return subprocess.run([sys.executable, "-c", KILLING_RUNNER, module, *map(str, argv)], capture_output=True,
                          text=True, timeout=timeout, env=environ)


def writes_of(proc: subprocess.CompletedProcess) -> int:
    line = [x for x in proc.stderr.splitlines() if x.startswith("VLF_WRITES=")]
    assert proc.returncode == 0 and line, proc.stderr[-2000:]
    return int(line[-1].split("=")[1])


def kill_points(total_writes: int, count: int, salt: str) -> list[tuple[int, str]]:
    """``count`` seeded (write number, phase) pairs over a run that makes ``total_writes`` writes."""
    rng = random.Random(f"{SEED}-{salt}")
    return [(rng.randint(1, total_writes), rng.choice(PHASES)) for _ in range(count)]


def snapshot(path: Path, with_provenance: bool = False) -> dict[str, tuple]:
    """id -> (split, captions as (text, source, kind) in stored order, SHA-256 of the image or its path, meta)."""
    with CaptionStore(path) as store:
        out = {}
        for record in store.iter_records():
            image = (hashlib.sha256(record.image_bytes).hexdigest() if record.image_bytes is not None
                     else record.image_path)
            captions = tuple((c.text, c.source, c.kind) + ((json.dumps(c.provenance, sort_keys=True),)
                                                          if with_provenance else ()) for c in record.captions)
            out[record.image_id] = (record.split, captions, image, json.dumps(record.meta, sort_keys=True))
        return out


def check_killed_store(path: Path, reference: dict[str, tuple]) -> None:
    """After a kill: the store (if its creation got that far) opens, verifies, and holds only committed data that
    the uninterrupted run also holds (every record a prefix of the reference's captions, nothing doubled)."""
    if not path.exists():
        return
    with CaptionStore(path) as store:
        report = verify_store(store, check_images=False)
        assert report.ok, report.problems[:5]
    for image_id, (split, captions, image, _meta) in snapshot(path).items():
        assert image_id in reference, image_id
        ref_split, ref_captions, ref_image, _ = reference[image_id]
        assert (split, image) == (ref_split, ref_image)
        assert len(set(captions)) == len(captions) and set(captions) <= set(ref_captions), image_id


@pytest.fixture
def faults(request) -> SimpleNamespace:
    """Helpers, and ``record(kind, what, **counts)`` appending one JSON line to $VLFORGE_FAULTS_LOG (if set)."""

    def record(kind: str, what: str, **counts: int) -> None:
        log = os.environ.get("VLFORGE_FAULTS_LOG")
        if log:
            with open(log, "a", encoding="utf-8") as f:
                f.write(json.dumps({"test": request.node.name, "kind": kind, "what": what, **counts}) + "\n")

    return SimpleNamespace(run_console=run_console, writes_of=writes_of, kill_points=kill_points,
                           snapshot=snapshot, check_killed_store=check_killed_store, record=record, seed=SEED,
                           toy_dir=TOY_DIR, signal=signal)
