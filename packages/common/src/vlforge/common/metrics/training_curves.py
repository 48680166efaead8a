"""Training curves of a run folder: every metric of its metrics.csv (Lightning's CSV logger) against the optimizer
step, the train and val series of one quantity in the same panel (`train/loss` with `val/loss`, `train_loss` with
`val_loss`), the learning rate in its own panel.

    plot_run("runs/clip_mix/version_0", "runs/clip_mix/version_0/curves.png")
    python -m vlforge.common.metrics.training_curves RUN [--out PNG]
"""

from __future__ import annotations

import csv
import math
import os
import re
import sys
from pathlib import Path

from matplotlib.figure import Figure

from vlforge.common.console import ToolParser
from vlforge.common.errors import VLForgeError
from vlforge.common.metrics.plots import _save

_STAGE = re.compile(r"^(train|val|validation|test)[/_]")
_RECALL = re.compile(r"^(\w+)_r\d+$")
MAX_PANELS = 12


def read_metrics_csv(path: str | os.PathLike) -> dict[str, list[tuple[int, float]]]:
    """metric -> [(step, value)] of every non-empty cell of a CSV logger's metrics.csv."""
    path = Path(path)
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as err:
        raise VLForgeError(f"cannot read {path}: {err.strerror or err}") from None
    series: dict[str, list[tuple[int, float]]] = {}
    for line, row in enumerate(rows, start=2):
        try:
            step = int(float(row.get("step") or 0))
        except ValueError:
            raise VLForgeError(f"{path} line {line}: step {row.get('step')!r} is not a number") from None
        for name, cell in row.items():
            if name in ("step", "epoch") or cell in (None, ""):
                continue
            try:
                value = float(cell)
            except ValueError:
                continue
            if math.isfinite(value):
                series.setdefault(name, []).append((step, value))
    return series


def quantity(metric: str) -> str:
    """The panel a metric goes to: `train/loss`, `val/loss`, `train_loss` -> `loss`; `lr-AdamW` -> `learning rate`;
    `val/t2i_r1`, `val/t2i_r5` -> `t2i recall (%)`; `val/aro_<perturbation>` -> `ARO accuracy (%)`."""
    if metric.startswith("lr-"):
        return "learning rate"
    name = _STAGE.sub("", metric)
    recall = _RECALL.match(name)
    if recall:
        return f"{recall[1]} recall (%)"
    if name.startswith("aro_"):
        return "ARO accuracy (%)"
    return name


def plot_run(run_dir: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Draw the curves of `run_dir/metrics.csv` into `out` (default `run_dir/curves.png`); returns the PNG path."""
    run_dir = Path(run_dir)
    csv_path = run_dir / "metrics.csv"
    if not csv_path.is_file():
        raise VLForgeError(f"{run_dir}: no metrics.csv (is it a run folder, runs/<name>/version_<n>?)")
    series = read_metrics_csv(csv_path)
    if not series:
        raise VLForgeError(f"{csv_path}: no metric values to plot")
    panels: dict[str, list[str]] = {}
    for name in series:
        panels.setdefault(quantity(name), []).append(name)
    names = list(panels)[:MAX_PANELS]
    columns = min(3, len(names))
    rows = -(-len(names) // columns)
    figure = Figure(figsize=(3.6 * columns, 2.5 * rows + 0.7))
    last_step = max(step for points in series.values() for step, _ in points)
    for n, panel in enumerate(names):
        axes = figure.add_subplot(rows, columns, n + 1)
        for metric in panels[panel]:
            steps, values = zip(*series[metric])
            style = "o-" if len(steps) < 30 else "-"
            axes.plot(steps, values, style, markersize=3, linewidth=1, label=f"{metric} ({len(steps)} points)")
        axes.set_title(panel, fontsize="small")
        axes.set_xlim(-0.02 * last_step, 1.02 * max(last_step, 1))
        axes.ticklabel_format(axis="y", useOffset=False)
        axes.tick_params(labelsize="x-small")
        axes.legend(fontsize="xx-small")
        if n >= len(names) - columns:
            axes.set_xlabel("optimizer step", fontsize="small")
    dropped = len(panels) - len(names)
    figure.suptitle(f"{run_dir.parent.name}/{run_dir.name}: training curves to step {last_step}"
                    + (f" ({dropped} more metrics not shown)" if dropped else ""))
    return _save(figure, out if out is not None else run_dir / "curves.png")


def main(argv: list[str] | None = None) -> int:
    parser = ToolParser(prog="vlforge-plot", description="Draw a run folder's training curves.")
    parser.add_argument("run", help="a run folder holding metrics.csv (runs/<name>/version_<n>)")
    parser.add_argument("--out", help="the PNG to write (default RUN/curves.png)")
    try:
        args = parser.parse_args(argv)
        print(plot_run(args.run, args.out))
    except VLForgeError as err:
        print(f"vlforge-plot: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
