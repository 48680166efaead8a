"""Progress in a terminal (a real pseudo-terminal): Progress draws a tqdm bar, not status lines, and the training
console picks Rich's progress bar there and the log-line bar (LogProgressBar) in a log file."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import select
import struct
import sys
import termios
from collections.abc import Iterator
from pathlib import Path

import pytest
from lightning.pytorch.callbacks import RichProgressBar

from vlforge.common.cli import VLForgeCLI
from vlforge.common.log_progress_bar import LogProgressBar
from vlforge.common.progress import Progress, is_status_line

TOY_BASE = Path(__file__).parent / "toy" / "toy_base.yaml"


@pytest.fixture
def terminal() -> Iterator[tuple[io.TextIOWrapper, int]]:
    """A pseudo-terminal 100 columns wide: (the stream a job writes to, the master's fd to read what it drew)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    stream = open(slave, "w", buffering=1)
    os.set_blocking(master, False)
    yield stream, master
    stream.close()
    os.close(master)


def _drawn(master: int) -> str:
    """Everything drawn so far: a pseudo-terminal hands its output over in chunks, so read until it stays quiet."""
    chunks = []
    while select.select([master], [], [], 0.5)[0]:
        try:
            chunk = os.read(master, 1 << 16)
        except BlockingIOError:
            continue
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode()


def test_progress_draws_a_tqdm_bar_in_a_terminal(terminal):
    stream, master = terminal
    with Progress("export", total=4, unit="records", interval=0.0, stream=stream, enabled=True) as progress:
        for _ in range(4):
            progress.update()
    drawn = _drawn(master)
    assert "export: 100%|" in drawn and "| 4/4 [" in drawn and " records/s]" in drawn, drawn
    assert not any(is_status_line(line) for line in drawn.replace("\r", "\n").splitlines())


def _progress_bars(tmp_path: Path) -> list[type]:
    cli = VLForgeCLI("common", ["--config", str(TOY_BASE), "--trainer.enable_progress_bar", "true",
                                "--run_root", str(tmp_path)], run=False)
    return [type(c) for c in cli.trainer.callbacks if isinstance(c, (RichProgressBar, LogProgressBar))]


def test_training_console_picks_rich_in_a_terminal_and_the_log_bar_otherwise(terminal, tmp_path, monkeypatch):
    stream, _ = terminal
    monkeypatch.setattr(sys, "stderr", stream)
    assert _progress_bars(tmp_path / "tty") == [RichProgressBar]
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a log file (SLURM, nohup, a stage's log.txt)
    assert _progress_bars(tmp_path / "log") == [LogProgressBar]
