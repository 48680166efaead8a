"""A stage runner for multi-step experiments: each stage runs once, is skipped when its outputs are complete,
and a failed or interrupted stage re-runs alone.

A stage is complete when ``<root>/<stage>/.done`` exists and records the stage's current fingerprint. The
marker is written last, after the stage's own work returned, so a killed stage leaves no marker and runs again
next time. The fingerprint is a hash of the stage's ``inputs`` (its configuration, as JSON) and of the markers
of the stages it depends on (``after``); a marker holds a token that is new at every completion, so when an
upstream stage runs again, every stage downstream of it runs again too.

Before a stage runs, its folder is emptied unless the stage says ``resume=True`` (a stage that continues from
its own partial output, e.g. caption generation that skips already-captioned images). Each stage reports its
wall time and the CPU time of this process and its children.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlforge.common.atomic_file import write_atomically
from vlforge.common.errors import VLForgeError

DONE_MARKER = ".done"


@dataclass
class Stage:
    """One step: ``run(stage_dir)`` does the work; ``inputs`` is everything that determines its output."""

    name: str
    run: Callable[[Path], None]
    inputs: dict[str, Any] = field(default_factory=dict)
    after: tuple[str, ...] = ()
    resume: bool = False


@dataclass
class StageResult:
    """What happened to one stage in one invocation: ``status`` is ran | skipped | planned."""

    name: str
    status: str
    seconds: float = 0.0
    cpu_seconds: float = 0.0


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class StageRunner:
    """Runs ``stages`` in order under ``root`` (one folder per stage); ``log`` receives one line per event."""

    def __init__(
        self, root: str | os.PathLike, stages: Sequence[Stage], log: Callable[[str], None] = print
    ) -> None:
        self.root, self.stages, self.log = Path(root), list(stages), log
        names = [s.name for s in self.stages]
        for stage in self.stages:
            if not stage.name or "/" in stage.name or stage.name.startswith("."):
                raise VLForgeError(f"stage name {stage.name!r} must be a plain folder name")
            unknown = [a for a in stage.after if a not in names[: names.index(stage.name)]]
            if unknown:
                raise VLForgeError(
                    f"stage {stage.name!r} runs after {unknown[0]!r}, which is not an earlier stage"
                )
        if len(set(names)) != len(names):
            raise VLForgeError(f"stage names must be unique: {names}")

    def stage_dir(self, name: str) -> Path:
        return self.root / name

    def marker(self, name: str) -> dict[str, Any] | None:
        """The completion record of stage ``name``, or None."""
        path = self.stage_dir(name) / DONE_MARKER
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, json.JSONDecodeError):
            return None  # a damaged marker means: not complete

    def fingerprint(self, stage: Stage) -> str:
        upstream = {name: (self.marker(name) or {}).get("token") for name in stage.after}
        text = json.dumps({"inputs": stage.inputs, "upstream": upstream}, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def is_complete(self, stage: Stage) -> bool:
        marker = self.marker(stage.name)
        return marker is not None and marker.get("fingerprint") == self.fingerprint(stage)

    def run(self, only: str | None = None, dry_run: bool = False) -> list[StageResult]:
        """Run every incomplete stage (or only stage ``only``, which then runs even if complete); with
        ``dry_run`` report what would run without running it."""
        names = [s.name for s in self.stages]
        if only is not None and only not in names:
            raise VLForgeError(f"unknown stage {only!r}; stages: {', '.join(names)}")
        results = []
        for position, stage in enumerate(self.stages, 1):
            if only is not None and stage.name != only:
                continue
            head = f"[{position}/{len(self.stages)}] {stage.name}"
            if only is None and self.is_complete(stage):
                done = self.marker(stage.name) or {}
                self.log(f"{head}: complete, skipped (took {done.get('seconds', 0):.0f} s)")
                results.append(
                    StageResult(stage.name, "skipped", done.get("seconds", 0.0), done.get("cpu_seconds", 0.0))
                )
                continue
            if dry_run:
                self.log(f"{head}: would run")
                results.append(StageResult(stage.name, "planned"))
                continue
            missing = [a for a in stage.after if self.marker(a) is None]
            if missing:
                raise VLForgeError(f"stage {stage.name!r} needs stage {missing[0]!r} to be complete first")
            results.append(self._run_one(stage, head))
        return results

    def _run_one(self, stage: Stage, head: str) -> StageResult:
        folder = self.stage_dir(stage.name)
        (folder / DONE_MARKER).unlink(missing_ok=True)
        if not stage.resume and folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.log(f"{head}: running")
        start_wall, start_cpu = time.perf_counter(), cpu_seconds()
        try:
            stage.run(folder)
        except BaseException:
            self.log(
                f"{head}: FAILED after {time.perf_counter() - start_wall:.0f} s (re-run to retry this stage)"
            )
            raise
        result = StageResult(
            stage.name, "ran", round(time.perf_counter() - start_wall, 2), round(cpu_seconds() - start_cpu, 2)
        )
        record = {
            "fingerprint": self.fingerprint(stage),
            "token": uuid.uuid4().hex,
            "seconds": result.seconds,
            "cpu_seconds": result.cpu_seconds,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        write_atomically(folder / DONE_MARKER, json.dumps(record, indent=1) + "\n")
        self.log(f"{head}: done in {result.seconds:.0f} s (CPU {result.cpu_seconds:.0f} s)")
        return result
