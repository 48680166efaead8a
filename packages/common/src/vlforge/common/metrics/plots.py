"""PNG plots of metrics with matplotlib's Agg canvas (no pyplot, no display, no global backend switch)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from vlforge.common.errors import VLForgeError


def _save(figure: Figure, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=100)
    return path


def plot_recall_bars(results: Mapping[str, Mapping[str, float]], path: str | os.PathLike,
                     ks: Sequence[int] = (1, 5, 10)) -> Path:
    """Grouped bars of ``t2i_r{k}`` and ``i2t_r{k}`` (percent) for each run in ``results`` (name -> metrics)."""
    if not results:
        raise VLForgeError("plot_recall_bars needs at least one result")
    keys = [f"{d}_r{k}" for d in ("t2i", "i2t") for k in ks]
    figure = Figure(figsize=(1.2 + 0.9 * len(keys) * max(1, len(results)) / 2, 3.5))
    axes = figure.add_subplot()
    width = 0.8 / len(results)
    for n, (name, metrics) in enumerate(results.items()):
        missing = [k for k in keys if k not in metrics]
        if missing:
            raise VLForgeError(f"result {name!r} has no {missing[0]!r}")
        axes.bar([i + n * width for i in range(len(keys))], [metrics[k] for k in keys], width, label=name)
    axes.set_xticks([i + width * (len(results) - 1) / 2 for i in range(len(keys))], keys)
    axes.set_ylabel("recall (%)")
    axes.set_ylim(0, 100)
    axes.legend(fontsize="small")
    return _save(figure, path)


def plot_length_histograms(lengths_by_source: Mapping[str, Sequence[int]], path: str | os.PathLike,
                           bins: int = 30) -> Path:
    """Overlaid caption-length histograms, one per source."""
    if not lengths_by_source:
        raise VLForgeError("plot_length_histograms needs at least one source")
    figure = Figure(figsize=(6, 3.5))
    axes = figure.add_subplot()
    top = max(max(v, default=0) for v in lengths_by_source.values())
    for source, lengths in lengths_by_source.items():
        axes.hist(lengths, bins=bins, range=(0, max(top, 1)), alpha=0.5, label=source)
    axes.set_xlabel("caption length (tokens)")
    axes.set_ylabel("captions")
    axes.legend(fontsize="small")
    return _save(figure, path)


def plot_word_frequencies(frequencies_by_source: Mapping[str, Mapping[str, object]], path: str | os.PathLike,
                          top_k: int = 15) -> Path:
    """One horizontal bar chart per source of its most frequent words (the output of ``word_frequencies``)."""
    if not frequencies_by_source:
        raise VLForgeError("plot_word_frequencies needs at least one source")
    figure = Figure(figsize=(3.2 * len(frequencies_by_source), 0.25 * top_k + 1.2))
    for n, (source, stats) in enumerate(frequencies_by_source.items()):
        axes = figure.add_subplot(1, len(frequencies_by_source), n + 1)
        top = list(stats["top"])[:top_k][::-1]
        axes.barh([w for w, _ in top], [c for _, c in top])
        axes.set_title(source, fontsize="small")
        axes.tick_params(labelsize="x-small")
    return _save(figure, path)
