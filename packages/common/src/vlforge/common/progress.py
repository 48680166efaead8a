"""Progress of long jobs: a tqdm bar in a terminal; in a log file (SLURM, nohup, a stage's log.txt) one status line
every `interval` seconds and one at the end:

    ingest: 1200/5000 images (24.0 %), 85.3 images/s, elapsed 14 s, ETA 45 s

`VLFORGE_PROGRESS_INTERVAL` (seconds, default 30) sets the interval of the status lines; `VLFORGE_PROGRESS=off`
silences both the bar and the lines (`-q` in a console does the same).
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, TypeVar

T = TypeVar("T")
DEFAULT_INTERVAL_S = 30.0
_STATUS_LINE = re.compile(r"^[^:]+: \d+(/\d+)? \S+.*/s, elapsed ")


def default_interval() -> float:
    """The seconds between status lines in a log: `VLFORGE_PROGRESS_INTERVAL`, else 30."""
    return float(os.environ.get("VLFORGE_PROGRESS_INTERVAL", DEFAULT_INTERVAL_S))


def progress_enabled() -> bool:
    return os.environ.get("VLFORGE_PROGRESS", "on").lower() not in ("off", "0", "false", "no")


def format_duration(seconds: float) -> str:
    """`42 s`, `3 min 05 s`, `2 h 07 min`."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def status_line(desc: str, done: int, total: int | None, elapsed: float, unit: str = "items",
                started_at: int = 0) -> str:
    """One line of progress: done/total (percent), rate, elapsed and ETA (done and rate only when the total is
    unknown). The rate counts the work since `started_at` (a resumed run's first step), done in `elapsed` s."""
    rate = (done - started_at) / elapsed if elapsed > 0 else 0.0
    head = f"{desc}: {done}/{total} {unit} ({100.0 * done / total:.1f} %)" if total else f"{desc}: {done} {unit}"
    line = f"{head}, {rate:.1f} {unit}/s, elapsed {format_duration(elapsed)}"
    if total and rate > 0:
        line += f", ETA {format_duration(max(total - done, 0) / rate)}"
    return line


def is_status_line(line: str) -> bool:
    """True for a line `status_line` wrote (how a job runner picks its children's progress out of their logs)."""
    return bool(_STATUS_LINE.match(line))


class Progress:
    """Counts work done; shows a tqdm bar when `stream` is a terminal, else writes `status_line` every
    `interval` seconds and once more on `close()`.

    with Progress("export", total=n, unit="records") as progress:
        for record in records:
            ...
            progress.update()
    """

    def __init__(self, desc: str, total: int | None = None, unit: str = "items", *,
                 interval: float | None = None, stream: IO[str] | None = None, enabled: bool | None = None) -> None:
        self.desc, self.total, self.unit = desc, total, unit
        self.stream = stream if stream is not None else sys.stderr
        self.interval = default_interval() if interval is None else interval
        self.enabled = progress_enabled() if enabled is None else enabled
        self.done = 0
        self._start = self._last = time.monotonic()
        self._closed = False
        self._bar = None
        if self.enabled and is_terminal(self.stream):
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=desc, unit=f" {unit}", file=self.stream, dynamic_ncols=True)

    def update(self, n: int = 1) -> None:
        self.done += n
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._write(now)

    def advance_to(self, done: int, total: int | None = None) -> None:
        """Set the count to `done` (and the total, when given): a `progress(done, total)` callback."""
        if total is not None:
            self.total = total
            if self._bar is not None:
                self._bar.total = total
        self.update(done - self.done)

    def close(self, final_line: bool = True) -> None:
        """End the bar, or write the final status line (once; not when the job failed: its error is the news)."""
        if self._closed:
            return
        self._closed = True
        if self._bar is not None:
            self._bar.close()
        elif self.enabled and final_line:
            self._write(time.monotonic())

    def _write(self, now: float) -> None:
        print(status_line(self.desc, self.done, self.total, now - self._start, self.unit), file=self.stream,
              flush=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        self.close(final_line=exc_type is None)


def track(items: Iterable[T], desc: str, total: int | None = None, unit: str = "items", **kwargs) -> Iterator[T]:
    """Iterate `items`, reporting one unit of progress per item (total: `len(items)` when it has one)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Progress(desc, total, unit, **kwargs) as progress:
        for item in items:
            yield item
            progress.update()


def is_terminal(stream: IO[str]) -> bool:
    """A terminal with a width (a pseudo-terminal of 0 columns, as under `script`, gets the status lines)."""
    isatty = getattr(stream, "isatty", None)
    if not (isatty and isatty()):
        return False
    try:
        return os.get_terminal_size(stream.fileno()).columns > 0
    except (OSError, ValueError, AttributeError):
        return False
