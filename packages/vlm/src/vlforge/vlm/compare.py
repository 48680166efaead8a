"""Figures of `vlforge-vlm evaluate` results, for one run or several side by side:

- recall_bars.png: text→image and image→text R@1/5/10 per run, with its number of test images and texts;
- zero_shot.png: zero-shot top-1 per ShapesWorld task (chance = 1 / number of classes dashed);
- aro.png: ARO-style accuracy per perturbation (chance 50 % dashed);
- linear_probe.png: linear-probe accuracy per task.

`plot_evaluations({run: result})` draws them (a result is one dataset's entry of evaluate's metrics.json);
`compare_metrics([metrics.json, ...], out)` reads several evaluate outputs and writes the figures and a Markdown
table (compare.md) into `out`:

    python -m vlforge.vlm.compare runs/a/eval/metrics.json runs/b/eval/metrics.json --out runs/compare
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vlforge.common.atomic_file import write_atomically
from vlforge.common.console import ToolParser
from vlforge.common.errors import VLForgeError
from vlforge.common.metrics import plot_recall_bars, plot_score_bars, read_metrics


def plot_evaluations(results: Mapping[str, Mapping[str, Any]], out: str | os.PathLike,
                     split: str = "test") -> list[Path]:
    """Write the figures of the metrics present in `results` (run -> evaluate result) into `out`."""
    out = Path(out)
    written: list[Path] = []
    recalls = {run: r["retrieval"] for run, r in results.items() if "retrieval" in r}
    if recalls:
        written.append(plot_recall_bars(recalls, out / "recall_bars.png",
                                        title=f"Image-text retrieval ({split} split)"))
    zero_shot = {run: {task: s["top1"] for task, s in r["zero_shot"].items()}
                 for run, r in results.items() if r.get("zero_shot")}
    if zero_shot:
        first = next(r["zero_shot"] for r in results.values() if r.get("zero_shot"))
        chance = {task: 100.0 / s["num_classes"] for task, s in first.items() if s.get("num_classes")}
        counts = {run: f"{_first(r['zero_shot'], 'num_images')} images"
                  for run, r in results.items() if r.get("zero_shot")}
        written.append(plot_score_bars(zero_shot, out / "zero_shot.png", f"Zero-shot classification, top-1 ({split})",
                                       counts=counts, chance=chance))
    aro = {run: {k: v for k, v in r["aro"].items() if k != "num_pairs"} for run, r in results.items() if r.get("aro")}
    if aro:
        counts = {run: f"{int(r['aro']['num_pairs'])} pairs" for run, r in results.items()
                  if r.get("aro") and "num_pairs" in r["aro"]}
        chance = {name: 50.0 for scores in aro.values() for name in scores}
        written.append(plot_score_bars(aro, out / "aro.png", f"ARO-style: positive over negative caption ({split})",
                                       counts=counts, chance=chance))
    probe = {run: {task: s["accuracy"] for task, s in r["linear_probe"].items()}
             for run, r in results.items() if r.get("linear_probe")}
    if probe:
        written.append(plot_score_bars(probe, out / "linear_probe.png", f"Linear probe accuracy ({split})"))
    return written


def compare_metrics(paths: Sequence[str | os.PathLike], out: str | os.PathLike,
                    names: Sequence[str] | None = None) -> list[Path]:
    """Read several evaluate metrics.json files (one dataset each, or the first dataset of each) and write their
    figures side by side plus compare.md into `out`. Runs are named by `names` or by their folders."""
    if not paths:
        raise VLForgeError("compare needs at least one metrics.json")
    if names is not None and len(names) != len(paths):
        raise VLForgeError(f"compare: {len(paths)} metrics files but {len(names)} names")
    from vlforge.vlm.evaluate import markdown_table, table_row

    results: dict[str, Mapping[str, Any]] = {}
    splits = set()
    for n, path in enumerate(paths):
        metrics = read_metrics(path)
        if not isinstance(metrics, dict) or not metrics.get("results"):
            raise VLForgeError(f"{path}: not a `vlforge-vlm evaluate` metrics.json (no results)")
        name = names[n] if names is not None else _run_name(Path(path))
        if name in results:
            name = f"{name} ({n + 1})"
        results[name] = next(iter(metrics["results"].values()))
        splits.add(str(metrics.get("split", "test")))
    out = Path(out)
    write_atomically(out / "compare.md", markdown_table({n: table_row(r) for n, r in results.items()}) + "\n", paths)
    return [out / "compare.md", *plot_evaluations(results, out, split="/".join(sorted(splits)))]


def _run_name(path: Path) -> str:
    """`runs/clip_mix/eval/metrics.json` -> `clip_mix` (the folder above an `eval` folder, else the parent)."""
    parent = path.parent
    return parent.parent.name if parent.name in ("eval", "evaluation") and parent.parent.name else parent.name


def _first(scores: Mapping[str, Mapping[str, Any]], key: str) -> int:
    return int(next(iter(scores.values())).get(key, 0))


def main(argv: Sequence[str] | None = None) -> int:
    parser = ToolParser(prog="vlforge-vlm compare",
                        description="Figures and a table of several evaluate runs side by side.")
    parser.add_argument("metrics", nargs="+", help="metrics.json files written by vlforge-vlm evaluate")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--names", nargs="+", help="one name per metrics file (default: their run folders)")
    try:
        args = parser.parse_args(argv)
        for path in compare_metrics(args.metrics, args.out, args.names):
            print(path)
    except VLForgeError as err:
        print(f"vlforge-vlm compare: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
