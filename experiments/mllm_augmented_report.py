"""runs/<name>/report.md of the MLLM-augmented experiment, from every seed folder present
(runs/<name>/seed<S>/):

- a table in the style of the paper's Table 1: each CLIP run's test retrieval on clean ground-truth captions
  (T2I and I2T R@1/5/10), ARO-style accuracy and zero-shot accuracy where the evaluation logged one; mean ±
  std over seeds;
- the gain of the augmented run over the baseline per seed and its mean, and the gain against the number of
  captioners (the paper's Fig. 5c) as a plot (report_captioners.png) from the runs named in ``report.curve``;
- figures of the first seed: test retrieval, zero-shot and ARO of every CLIP run side by side
  (``vlforge.vlm.compare``), caption lengths per source (the ``analyze`` stage) and the training curves of every
  fit (``vlforge.common.metrics.training_curves.plot_run``), in runs/<name>/figures/;
- the caption analysis of each source (the ``analyze`` stage): count, empty, length, CHAIR;
- per seed, the time and CPU time of every stage that ran.

The figures also go to runs/<name>/results.json: ``results`` (run -> seed -> metric), ``gains`` (seed -> T2I R@1
gain) and ``stage_seconds`` (seed folder -> stage -> wall and CPU seconds).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

METRICS = (
    ("T2I R@1", "t2i_r1"),
    ("T2I R@5", "t2i_r5"),
    ("T2I R@10", "t2i_r10"),
    ("I2T R@1", "i2t_r1"),
    ("I2T R@5", "i2t_r5"),
    ("I2T R@10", "i2t_r10"),
    ("ARO", "aro_all"),
    ("zero-shot shape", "zs_shape_top1"),
    ("zero-shot colour", "zs_colour_top1"),
    ("zero-shot count", "zs_count_top1"),
    ("probe shape", "probe_shape"),
)
HEADLINE = "t2i_r1"


def seed_dirs(root: Path) -> list[Path]:
    return sorted((p for p in root.glob("seed*") if p.name[4:].isdigit()), key=lambda p: int(p.name[4:]))


def run_metrics(seed_dir: Path, run: str) -> dict[str, float] | None:
    path = seed_dir / f"clip_{run}" / "metrics.json"
    if not (seed_dir / f"clip_{run}" / ".done").is_file() or not path.is_file():
        return None
    return json.loads(path.read_text())["metrics"]


def collect(root: Path, runs: list[str]) -> dict[str, dict[int, dict[str, float]]]:
    """run -> seed -> metrics, for the complete runs."""
    out: dict[str, dict[int, dict[str, float]]] = {}
    for seed_dir in seed_dirs(root):
        for run in runs:
            metrics = run_metrics(seed_dir, run)
            if metrics is not None:
                out.setdefault(run, {})[int(seed_dir.name[4:])] = metrics
    return out


def mean_std(values: list[float]) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values):.1f}"


def describe_captions(captions: list[Any]) -> str:
    parts = []
    for entry in captions:
        if isinstance(entry, str):
            parts.append(entry)
        else:
            extra = ", ".join(f"{k}={v}" for k, v in entry.items() if k != "source")
            parts.append(f"{entry['source']} ({extra})" if extra else entry["source"])
    return " + ".join(parts)


def results_table(exp: dict[str, Any], results: dict[str, dict[int, dict[str, float]]]) -> list[str]:
    present = [m for m in METRICS if any(m[1] in per for runs in results.values() for per in runs.values())]
    lines = [
        "| run | captions | seeds | " + " | ".join(m[0] for m in present) + " |",
        "|---|---|---|" + "---|" * len(present),
    ]
    for run, captions in exp["clip"]["runs"].items():
        if run not in results:
            continue
        per_seed = results[run]
        cells = [mean_std([m[key] for m in per_seed.values() if key in m]) for _, key in present]
        lines.append(
            f"| {run} | {describe_captions(captions)} | {len(per_seed)} | " + " | ".join(cells) + " |"
        )
    return lines


def gains(exp: dict[str, Any], results: dict[str, dict[int, dict[str, float]]]) -> dict[int, float]:
    """Per seed: augmented minus baseline T2I R@1 (seeds where both ran)."""
    report = exp.get("report") or {}
    base, aug = results.get(report.get("baseline", "")), results.get(report.get("augmented", ""))
    if not base or not aug:
        return {}
    return {s: aug[s][HEADLINE] - base[s][HEADLINE] for s in sorted(set(base) & set(aug))}


def curve(
    exp: dict[str, Any], results: dict[str, dict[int, dict[str, float]]]
) -> list[tuple[int, float, float]]:
    """(number of captioners, mean T2I R@1, std) for the runs of ``report.curve`` that completed."""
    points = []
    for count, run in sorted(
        ((int(k), v) for k, v in ((exp.get("report") or {}).get("curve") or {}).items())
    ):
        values = [m[HEADLINE] for m in results.get(run, {}).values()]
        if values:
            points.append(
                (count, statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0)
            )
    return points


def plot_curve(points: list[tuple[int, float, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 3))
    ax.errorbar(
        [p[0] for p in points], [p[1] for p in points], yerr=[p[2] for p in points], marker="o", capsize=3
    )
    ax.set_xlabel("number of captioners")
    ax.set_ylabel("T2I R@1 (clean gt captions)")
    ax.set_xticks([p[0] for p in points])
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def caption_analysis(seed_dir: Path) -> list[str]:
    path = seed_dir / "analyze" / "analysis.json"
    if not path.is_file():
        return ["(no caption analysis: the analyze stage has not run)"]
    data = json.loads(path.read_text())
    lines = [
        "| source | captions | empty | mean words | p90 words | type/token | CHAIR_i % | CHAIR_s % "
        "| top content words |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for source, counts in sorted(data["sources"].items()):
        length = data["lengths"].get(source, {})
        chair = (data.get("chair") or {}).get(source) or {}
        words = (data.get("content_words") or {}).get(source) or {}
        top = ", ".join(word for word, _ in (words.get("top") or [])[:6])
        lines.append(
            f"| {source} | {counts['captions']} | {counts['empty']} | {length.get('mean', 0):.1f} | "
            f"{length.get('p90', 0)} | {_fmt(words.get('type_token_ratio'))} | {_fmt(chair.get('chair_i'))} "
            f"| {_fmt(chair.get('chair_s'))} | {top} |"
        )
    return lines


def figures(root: Path, seed_dir: Path, runs: list[str]) -> list[str]:
    """Draw the first seed's figures into root/figures/ and return the report lines embedding them."""
    from vlforge.common.metrics.training_curves import plot_run
    from vlforge.vlm.compare import compare_metrics

    out = root / "figures"
    lines: list[str] = []
    evaluated = [(run, seed_dir / f"clip_{run}" / "eval" / "metrics.json") for run in runs]
    evaluated = [(run, path) for run, path in evaluated if path.is_file()]
    if evaluated:
        written = compare_metrics([p for _, p in evaluated], out, names=[r for r, _ in evaluated])
        lines += [f"![{p.stem}](figures/{p.name})" for p in written if p.suffix == ".png"]
    lengths = seed_dir / "analyze" / "lengths.png"
    if lengths.is_file():
        lines.append(f"![caption lengths]({lengths.relative_to(root)})")
    for fit in sorted(seed_dir.glob("*/fit/version_*/metrics.csv")):
        stage = fit.parents[2].name
        png = plot_run(fit.parent, out / f"curves_{stage}.png")
        lines.append(f"![training curves of {stage}](figures/{png.name})")
    return lines


def _fmt(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, (int, float)) else "–"


def stage_seconds(seed_dir: Path) -> dict[str, dict[str, float]]:
    """Wall and CPU seconds of each completed stage of one seed, in the order the stages finished."""
    markers = sorted(seed_dir.glob("*/.done"), key=lambda p: p.stat().st_mtime)
    return {
        marker.parent.name: {key: json.loads(marker.read_text())[key] for key in ("seconds", "cpu_seconds")}
        for marker in markers
    }


def timings(seed_dir: Path) -> list[str]:
    stages = stage_seconds(seed_dir)
    if not stages:
        return []
    rows = [f"{name} {t['seconds']:.0f} s (CPU {t['cpu_seconds']:.0f} s)" for name, t in stages.items()]
    wall, cpu = sum(t["seconds"] for t in stages.values()), sum(t["cpu_seconds"] for t in stages.values())
    return [f"- {seed_dir.name}: {wall:.0f} s wall, {cpu:.0f} s CPU — " + "; ".join(rows)]


def write_report(root: str | Path, exp: dict[str, Any]) -> Path:
    """Write root/report.md (and root/report_captioners.png when the curve has two points); returns the
    path."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    results = collect(root, list(exp["clip"]["runs"]))
    lines = [
        f"# {exp['name']}: MLLM-augmented CLIP training",
        "",
        "Test-split retrieval against clean ground-truth captions (each image's gt short caption), ARO-style "
        "accuracy over the test split's negatives; every CLIP run takes the same optimizer steps "
        f"({exp['clip']['max_steps']}). Mean ± std over seeds.",
        "",
        *results_table(exp, results),
        "",
    ]
    per_seed = gains(exp, results)
    if per_seed:
        values = list(per_seed.values())
        lines += [
            "## Gain of the augmented run over the baseline (T2I R@1)",
            "",
            "per seed: " + ", ".join(f"seed {s}: {g:+.1f}" for s, g in per_seed.items()),
            f"mean: {statistics.mean(values):+.1f} points over {len(values)} seed(s)",
            "",
        ]
    points = curve(exp, results)
    if len(points) >= 2:
        plot_curve(points, root / "report_captioners.png")
        lines += [
            "## T2I R@1 against the number of captioners (paper Fig. 5c)",
            "",
            "![gain against captioners](report_captioners.png)",
            "",
            "| captioners | T2I R@1 |",
            "|---|---|",
            *(f"| {n} | {m:.1f} ± {s:.1f} |" for n, m, s in points),
            "",
        ]
    seeds = seed_dirs(root)
    drawn = figures(root, seeds[0], list(exp["clip"]["runs"])) if seeds else []
    if drawn:
        lines += [f"## Figures ({seeds[0].name})", "", *(f"{line}\n" for line in drawn), ""]
    if seeds:
        lines += [
            f"## Caption analysis per source ({seeds[0].name}, pool split)",
            "",
            *caption_analysis(seeds[0]),
            "",
            "## Stage times",
            "",
            *[line for s in seeds for line in timings(s)],
            "",
        ]
    path = root / "report.md"
    path.write_text("\n".join(lines) + "\n")
    stages = {s.name: stage_seconds(s) for s in seeds}
    (root / "results.json").write_text(
        json.dumps({"results": results, "gains": per_seed, "stage_seconds": stages}, indent=1) + "\n"
    )
    return path
