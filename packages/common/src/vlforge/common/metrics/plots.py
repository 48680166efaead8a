"""PNG plots of metrics with matplotlib's Agg canvas (no pyplot, no display, no global backend switch)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from vlforge.common.atomic_file import atomic_output
from vlforge.common.errors import VLForgeError


def _save(figure: Figure, path: str | os.PathLike) -> Path:
    """Write ``figure`` as a PNG at ``path``, atomically."""
    FigureCanvasAgg(figure)
    figure.tight_layout()
    with atomic_output(path, binary=True) as f:
        figure.savefig(f, format="png", dpi=100)
    return Path(path)


def _label_bars(axes, bars, fmt: str = "{:.1f}") -> None:
    axes.bar_label(bars, labels=[fmt.format(b.get_height()) for b in bars], fontsize="x-small", padding=1)


def plot_recall_bars(results: Mapping[str, Mapping[str, float]], path: str | os.PathLike,
                     ks: Sequence[int] = (1, 5, 10), title: str = "Image-text retrieval") -> Path:
    """Grouped bars of ``t2i_r{k}`` and ``i2t_r{k}`` (percent, value on each bar) for each run in ``results``
    (name -> metrics, e.g. several checkpoints side by side); the legend names each run's number of test images
    and texts (``num_images`` / ``num_texts``) when given, since R@10 over 16 images says little."""
    if not results:
        raise VLForgeError("plot_recall_bars needs at least one result")
    keys = [f"{d}_r{k}" for d in ("t2i", "i2t") for k in ks]
    labels = [f"{'text→image' if d == 't2i' else 'image→text'}\nR@{k}" for d in ("t2i", "i2t") for k in ks]
    figure = Figure(figsize=(max(5.0, 1.5 + 0.45 * len(keys) * len(results)), 3.8))
    axes = figure.add_subplot()
    width = 0.8 / len(results)
    for n, (name, metrics) in enumerate(results.items()):
        missing = [k for k in keys if k not in metrics]
        if missing:
            raise VLForgeError(f"result {name!r} has no {missing[0]!r}")
        bars = axes.bar([i + n * width for i in range(len(keys))], [metrics[k] for k in keys], width,
                        label=name + _counts(metrics, ("num_images", "test images"), ("num_texts", "texts")))
        _label_bars(axes, bars)
    axes.set_xticks([i + width * (len(results) - 1) / 2 for i in range(len(keys))], labels, fontsize="small")
    axes.set_ylabel("recall (%)")
    axes.set_ylim(0, 109)
    axes.set_title(title)
    axes.legend(fontsize="x-small", loc="upper left")
    return _save(figure, path)


def plot_score_bars(results: Mapping[str, Mapping[str, float]], path: str | os.PathLike, title: str,
                    ylabel: str = "accuracy (%)", counts: Mapping[str, str] | None = None,
                    chance: Mapping[str, float] | None = None) -> Path:
    """Grouped bars (value on each bar) of the same scores for several runs: ``results`` is run -> score name ->
    value (zero-shot top-1 per task, ARO accuracy per perturbation, ...). ``counts``: run -> e.g. "200 images",
    shown in the legend; ``chance``: score name -> chance level, drawn as a dashed tick over its group."""
    if not results:
        raise VLForgeError(f"{title}: nothing to plot")
    names = list(dict.fromkeys(k for scores in results.values() for k in scores))
    figure = Figure(figsize=(max(5.0, 1.5 + 0.45 * len(names) * len(results)), 3.6))
    axes = figure.add_subplot()
    width = 0.8 / len(results)
    for n, (run, scores) in enumerate(results.items()):
        label = run + (f" ({counts[run]})" if counts and run in counts else "")
        bars = axes.bar([i + n * width for i, k in enumerate(names)], [scores.get(k, 0.0) for k in names], width,
                        label=label)
        _label_bars(axes, bars)
    centres = [i + width * (len(results) - 1) / 2 for i in range(len(names))]
    for centre, name in zip(centres, names):
        if chance and name in chance:
            axes.hlines(chance[name], centre - 0.45, centre + 0.45, colors="grey", linestyles="dashed")
    axes.set_xticks(centres, [n.replace("_", "\n") for n in names], fontsize="small")
    axes.set_ylabel(ylabel)
    axes.set_ylim(0, 109)
    axes.set_title(title + ("\n(dashed line: chance level)" if chance else ""), fontsize="medium")
    axes.legend(fontsize="x-small", loc="upper left")
    return _save(figure, path)


def plot_length_histograms(lengths_by_source: Mapping[str, Sequence[int]], path: str | os.PathLike,
                           bins: int = 30, title: str = "Caption length by source") -> Path:
    """Small multiples, one panel per source on a shared x axis: the share of its captions (%) at each length in
    words, with the number of captions and the mean length in the panel title (sources of different sizes stay
    comparable and none hides behind another)."""
    if not lengths_by_source:
        raise VLForgeError("plot_length_histograms needs at least one source")
    top = max(max(v, default=0) for v in lengths_by_source.values())
    columns = min(3, len(lengths_by_source))
    rows = -(-len(lengths_by_source) // columns)
    figure = Figure(figsize=(3.2 * columns, 2.2 * rows + 0.6))
    for n, (source, lengths) in enumerate(lengths_by_source.items()):
        axes = figure.add_subplot(rows, columns, n + 1)
        lengths = list(lengths)
        weights = [100.0 / len(lengths)] * len(lengths) if lengths else None
        axes.hist(lengths, bins=min(bins, max(top, 1)), range=(0, max(top, 1)), weights=weights,
                  color=f"C{n % 10}")
        mean = sum(lengths) / len(lengths) if lengths else 0.0
        axes.set_title(f"{source}: {len(lengths)} captions, mean {mean:.1f}", fontsize="small")
        axes.tick_params(labelsize="x-small")
        if n % columns == 0:
            axes.set_ylabel("captions (%)", fontsize="small")
        if n >= len(lengths_by_source) - columns:
            axes.set_xlabel("caption length (words)", fontsize="small")
    figure.suptitle(title)
    return _save(figure, path)


def _counts(metrics: Mapping[str, float], *fields: tuple[str, str]) -> str:
    parts = [f"{int(metrics[key])} {what}" for key, what in fields if key in metrics]
    return f" ({', '.join(parts)})" if parts else ""


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
