"""A CSVLogger whose ``metrics.csv`` stays complete across ``fit --ckpt_path last``.

Lightning's CSV experiment writer deletes the ``metrics.csv`` of an existing version folder, so a resumed fit kept only
the rows logged after the resume (and no file at all when nothing was left to train). Here the file is kept. At the
first save after the resume, the rows from the first step the resumed run logs onwards are dropped (the killed run
logged them after its last checkpoint; the resumed run logs them again), then the new rows are appended. A last line
cut off by the kill is dropped. Every rewrite of the file is atomic.
"""

from __future__ import annotations

import csv
import io
import os

from lightning.fabric.loggers.logger import rank_zero_experiment
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from vlforge.common.atomic_file import atomic_output


class _KeepingExperimentWriter(ExperimentWriter):
    """Lightning's writer, except that an existing ``metrics.csv`` is continued rather than deleted."""

    def __init__(self, log_dir: str) -> None:
        super().__init__(log_dir)
        self._continues_file = os.path.isfile(self.metrics_file_path)

    def _check_log_dir_exists(self) -> None:  # Lightning's deletes metrics.csv here
        pass

    def save(self) -> None:
        if self.metrics and self._continues_file:
            first_new_step = min(int(m["step"]) for m in self.metrics)
            header, rows = _complete_rows(self.metrics_file_path)
            self._write(header, [row for row in rows if _step(row) is not None and _step(row) < first_new_step])
            self.metrics_keys = list(header)
            self._continues_file = False
        super().save()

    def _rewrite_with_new_header(self, fieldnames: list[str]) -> None:
        self._write(fieldnames, _complete_rows(self.metrics_file_path)[1])

    def _write(self, fieldnames: list[str], rows: list[dict[str, str]]) -> None:
        with atomic_output(self.metrics_file_path, newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fieldnames)
            writer.writeheader()
            writer.writerows(rows)


class ResumedCSVLogger(CSVLogger):
    """``CSVLogger`` continuing the ``metrics.csv`` of the version folder a resumed fit writes to."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _KeepingExperimentWriter(log_dir=self.log_dir)
        return self._experiment


def _complete_rows(path: str) -> tuple[list[str], list[dict[str, str]]]:
    """The header and the complete rows of a metrics file (a last line without its line end was cut off)."""
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows = [row for row in reader if None not in row and None not in row.values()]
    return list(reader.fieldnames or []), rows


def _step(row: dict[str, str]) -> int | None:
    try:
        return int(row["step"])
    except (KeyError, ValueError):
        return None
