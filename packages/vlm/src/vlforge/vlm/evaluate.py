"""`vlforge-vlm evaluate`: one checkpoint on several stores (and image folders) into one table.

    vlforge-vlm evaluate --checkpoint runs/vlm/version_0/checkpoints/last.ckpt \\
        --stores [data/shapes_a, data/shapes_b] --output_dir eval/clip --image_folders [data/my_folder]

The checkpoint is anything vlforge.vlm.loading.load_clip reads: a Lightning ``.ckpt`` (or DeepSpeed folder) of
ContrastiveLitModule, built from its run's config.yaml (``--run_config`` when the checkpoint is not in its run
folder's checkpoints/); a vlforge export folder (config.json + model.safetensors); or an open_clip folder
(open_clip_config.json + weights). Per store, on ``--split``: retrieval R@1/5/10 both directions over
``--eval_captions``, ShapesWorld zero-shot (``--zero_shot_tasks``), ARO-style accuracy per perturbation, and a
linear probe fitted on ``--probe_train_split``; ``hard_queries`` (on request, or with ``--rewritten_queries NAME``):
text-to-image R@k of the hard queries (``--queries``, default gt/query) raw and, with ``--rewritten_queries``, each
replaced by the named rewriter's stored rewrite (``vlforge-rewriter predict``; vlforge.vlm.query_retrieval). Per
image folder: zero-shot with folder names as classes. Writes
``metrics.json``, ``metrics.md`` and ``recall_bars.png`` into ``--output_dir`` and prints the markdown table.
Options may come from a YAML file (``--config``; the shipped ``vlm:eval/shapes_full.yaml`` runs every metric).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from jsonargparse import ActionConfigFile, ArgumentParser
from torch import nn

from vlforge.common.atomic_file import write_atomically
from vlforge.common.cli import resolve_config_args
from vlforge.common.errors import VLForgeError
from vlforge.common.metrics import write_metrics
from vlforge.common.sampling import CaptionChoice
from vlforge.vlm.compare import plot_evaluations
from vlforge.vlm.evaluation import encode_split, split_aro, split_retrieval
from vlforge.vlm.linear_probe import shapes_linear_probe
from vlforge.vlm.loading import load_clip
from vlforge.vlm.query_retrieval import query_retrieval
from vlforge.vlm.scoring import tower_image_size
from vlforge.vlm.zero_shot import OBJECT_RULES, SHAPES_TASKS, image_folder_zero_shot, shapes_zero_shot

METRICS = ("retrieval", "zero_shot", "aro", "linear_probe")
ON_REQUEST = ("hard_queries",)  # not in the default --metrics (a store needs hard queries for it)
RECALL_COLUMNS = tuple(f"{d}_r{k}" for d in ("t2i", "i2t") for k in (1, 5, 10))


def _unique_names(paths: Sequence[str]) -> list[str]:
    names = [Path(p).name or p for p in paths]
    return [name if names.count(name) == 1 else path for name, path in zip(names, paths, strict=True)]


def evaluate_store(model: nn.Module, store: str, metrics: Sequence[str], *, split: str,
                   probe_train_split: str, eval_captions: CaptionChoice, zero_shot_tasks: Sequence[str],
                   object_rule: str, image_size: int, batch_size: int,
                   max_images: int | None, queries: CaptionChoice | None = None,
                   rewritten_queries: str | None = None) -> dict[str, Any]:
    """The requested metrics of one store (``metric name -> its results``)."""
    encoding = encode_split(model, store, split, image_size, batch_size, max_images)
    result: dict[str, Any] = {}
    if "retrieval" in metrics:
        result["retrieval"] = split_retrieval(model, encoding, eval_captions, batch_size)
    if "zero_shot" in metrics:
        result["zero_shot"] = shapes_zero_shot(model, encoding, zero_shot_tasks, object_rule)
    if "aro" in metrics:
        result["aro"] = split_aro(model, encoding, batch_size)
    if "hard_queries" in metrics:
        result["hard_queries"] = query_retrieval(model, encoding, queries or CaptionChoice("gt", "query"),
                                                 rewritten_queries, batch_size)
    if "linear_probe" in metrics:
        train = encode_split(model, store, probe_train_split, image_size, batch_size, max_images)
        result["linear_probe"] = shapes_linear_probe(train, encoding, zero_shot_tasks, object_rule)
    return result


def table_row(result: dict[str, Any]) -> dict[str, float]:
    """One table row: recalls, ``zs_<task>_top1``, ``aro_<perturbation>``, ``probe_<task>``."""
    row: dict[str, float] = {}
    if "retrieval" in result:
        row.update({key: result["retrieval"][key] for key in RECALL_COLUMNS})
    if "hard_queries" in result:
        row["hq_raw_t2i_r1"] = result["hard_queries"]["raw"]["t2i_r1"]
        if "rewritten" in result["hard_queries"]:
            row["hq_rewritten_t2i_r1"] = result["hard_queries"]["rewritten"]["t2i_r1"]
    for task, scores in result.get("zero_shot", {}).items():
        row[f"zs_{task}_top1"] = scores["top1"]
    for kind, value in result.get("aro", {}).items():
        if kind != "num_pairs":
            row[f"aro_{kind}"] = value
    for task, scores in result.get("linear_probe", {}).items():
        row[f"probe_{task}"] = scores["accuracy"]
    if "image_folder_zero_shot" in result:
        row["zs_top1"] = result["image_folder_zero_shot"]["top1"]
    return row


def markdown_table(rows: dict[str, dict[str, float]]) -> str:
    """A markdown table, one row per evaluated dataset, one column per metric (``-`` where it was not run)."""
    columns: list[str] = []
    for row in rows.values():
        columns.extend(c for c in row if c not in columns)
    lines = ["| dataset | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for name, row in rows.items():
        cells = [f"{row[c]:.1f}" if c in row else "-" for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="vlforge-vlm evaluate", exit_on_error=False, allow_abbrev=False,
                            description="Evaluate one checkpoint on several stores into one table.")
    parser.add_argument("--config", action=ActionConfigFile, help="a YAML file of these options")
    parser.add_argument("--checkpoint", type=str, required=True,
                        help=".ckpt / DeepSpeed folder, vlforge export folder or open_clip folder")
    parser.add_argument("--run_config", type=str | None, default=None,
                        help="the run's config.yaml when the checkpoint is not in <run>/checkpoints/")
    parser.add_argument("--stores", type=list[str], default=[], help="caption stores to evaluate")
    parser.add_argument("--image_folders", type=list[str], default=[],
                        help="ImageFolder-layout folders for zero-shot classification")
    parser.add_argument("--metrics", type=list[str], default=list(METRICS),
                        help=f"any of {', '.join(METRICS + ON_REQUEST)}")
    parser.add_argument("--split", type=str, default="test", help="the evaluated split of every store")
    parser.add_argument("--probe_train_split", type=str, default="seed",
                        help="the linear probe's training split")
    parser.add_argument("--eval_captions", type=dict, default={"source": "gt", "kind": "short"},
                        help="which captions retrieval uses (source, kind)")
    parser.add_argument("--queries", type=dict, default={"source": "gt", "kind": "query"},
                        help="hard_queries: which captions are the queries (source, kind)")
    parser.add_argument("--rewritten_queries", type=str | None, default=None,
                        help="hard_queries: also retrieve with this rewriter's stored rewrites (adds the metric)")
    parser.add_argument("--zero_shot_tasks", type=list[str], default=list(SHAPES_TASKS),
                        help="ShapesWorld tasks of zero-shot and the linear probe")
    parser.add_argument("--object_rule", type=str, default="largest",
                        help=f"one of {', '.join(OBJECT_RULES)}")
    parser.add_argument("--image_size", type=int | None, default=None, help="default: the image tower's")
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--max_images", type=int | None, default=None,
                        help="evaluate at most this many per split")
    parser.add_argument("--device", type=str, default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--output_dir", type=str, required=True, help="where metrics.json / .md / .png go")
    return parser


def evaluate(args: Any) -> tuple[dict[str, Any], str]:
    """Run the evaluation described by parsed ``args``; returns (all results, markdown table)."""
    unknown = sorted(set(args.metrics) - set(METRICS + ON_REQUEST))
    if unknown:
        raise VLForgeError(f"--metrics: {unknown[0]!r} is not one of {', '.join(METRICS + ON_REQUEST)}")
    metrics = list(args.metrics) + (["hard_queries"] if args.rewritten_queries and "hard_queries" not in
                                    args.metrics else [])
    if not args.stores and not args.image_folders:
        raise VLForgeError("nothing to evaluate: pass --stores and/or --image_folders")
    eval_captions = CaptionChoice(**args.eval_captions)
    model = load_clip(args.checkpoint, args.run_config).to(args.device).eval()
    image_size = args.image_size if args.image_size is not None else tower_image_size(model)
    results: dict[str, Any] = {}
    for name, store in zip(_unique_names(args.stores), args.stores, strict=True):
        results[name] = evaluate_store(model, store, metrics, split=args.split,
                                       probe_train_split=args.probe_train_split, eval_captions=eval_captions,
                                       zero_shot_tasks=args.zero_shot_tasks, object_rule=args.object_rule,
                                       image_size=image_size, batch_size=args.batch_size,
                                       max_images=args.max_images, queries=CaptionChoice(**args.queries),
                                       rewritten_queries=args.rewritten_queries)
    for name, folder in zip(_unique_names(args.image_folders), args.image_folders, strict=True):
        results[name] = {"image_folder_zero_shot": image_folder_zero_shot(model, folder, image_size,
                                                                          batch_size=args.batch_size)}
    table = markdown_table({name: table_row(result) for name, result in results.items()})
    out = Path(args.output_dir)
    inputs = [args.checkpoint, *args.stores]
    write_metrics(out, {"checkpoint": str(args.checkpoint), "split": args.split, "results": results}, inputs=inputs)
    write_atomically(out / "metrics.md", table + "\n", inputs)
    plot_evaluations(results, out, split=args.split)
    return results, table


def main(argv: Sequence[str]) -> int:
    """``vlforge-vlm evaluate ...`` (a tool of vlforge.vlm.cli; the console reports mistakes in one line)."""
    _, table = evaluate(build_parser().parse_args(resolve_config_args(argv)))
    print(table)
    return 0
