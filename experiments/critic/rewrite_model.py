"""The rewrite model against the drop-inconsistent baseline on held-out corrupted captions (#12 item 5, "the rewrite
model against the drop-inconsistent baseline"), with the scene-graph critic so that only the rewrite step differs:

    python experiments/critic/rewrite_model.py --store runs/critic_rewrite/store \\
        --rewriter preset:llama_tiny runs/critic_rewrite/fit_s0/critic/version_0/checkpoints/last.ckpt \\
        --out docs/results/critic_rewrite_model_s0.json

Two weak sources of the ``--split`` (test) images' gt dense captions, written by experiments/critic/rewrite_outcome.py:
``corrupted_cs`` (colour and shape words swapped at rate 0.1: the rewrite model's training corruption, on images it
never saw) and ``corrupted`` (shape words swapped at 0.6, heavier than training). Each is rewritten by
``vlforge-critic predict`` twice — drop-inconsistent (``<source>+critic``) and the rewrite model (``<source>+rewrite``;
``<source>+rewrite_sentence`` with ``--scope sentence``, critic:rewrite_sentence_tiny.yaml's model) — and compared
with ``vlforge-critic analyze`` (CHAIR_i / CHAIR_s, object coverage, words), plus the share of rewrites that give
back the clean gt caption word for word. Each step runs once (a finished one is skipped); ``--tag`` tells the
rewrites of several trained models apart (``<source>+rewrite_sentence_s1``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from vlforge.common.store import CaptionStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from steps import run_step  # noqa: E402  (experiments/steps.py)

BIN = Path(sys.executable).parent
HERE = Path(__file__).resolve().parent
PROMPTS = {"caption": "short", "sentence": "sentence"}  # the tiny recipes' prompts (critic:rewrite_tiny.yaml, ...)
TARGETS = {"caption": "rewrite", "sentence": "rewrite_sentence"}
SOURCES = {"corrupted_cs": ["--words", "colours_shapes", "--rate", "0.1"], "corrupted": ["--words", "shapes",
                                                                                          "--rate", "0.6"]}



def exact_clean(store: str, split: str, target: str) -> dict[str, int]:
    """How many captions of ``target`` equal the image's gt dense caption, of how many."""
    with CaptionStore(store, readonly=True) as s:
        pairs = [(r.captions_by(source=target)[0].text, r.captions_by(source="gt", kind="dense")[0].text)
                 for r in (s.get(i) for i in s.ids(split)) if r.captions_by(source=target)]
    return {"exact": sum(a == b for a, b in pairs), "of": len(pairs)}


def one_source(source: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    store, split = str(args.store), args.split
    marker = work / f"{source}.written"
    if not marker.exists():
        run_step([sys.executable, str(HERE / "rewrite_outcome.py"), "--store", store, "--split", split, "--limit",
                  str(args.limit), "--seed", str(args.seed), "--source", source, *SOURCES[source]],
                 work / f"{source}_write.log")
        marker.touch()
    out: dict[str, Any] = {}
    rewriter = ["--model.init_args.rewriter_source", args.rewriter[0], "--model.init_args.rewriter_checkpoint",
                args.rewriter[1], "--model.init_args.rewrite_prompt", PROMPTS[args.scope],
                "--model.init_args.rewrite_scope", args.scope]
    for name, extra in (("drop_inconsistent", []), ("rewrite_model", rewriter)):
        target = f"{source}+critic" if name == "drop_inconsistent" else f"{source}+{TARGETS[args.scope]}{args.tag}"
        if not (work / f"{target}.done").exists():
            run_step([str(BIN / "vlforge-critic"), "predict", "--config", "critic:predict_tiny.yaml",
                      "--data.init_args.store", store, "--data.init_args.split", split, "--data.init_args.limit",
                      str(args.limit), "--model.init_args.source", source,
                      "--model.init_args.critic_source", "scene_graph",
                      "--model.init_args.target", target, *extra, "--trainer.enable_progress_bar", "false",
                      "--run_root", str(work / "predict")], work / f"predict_{target}.log")
            (work / f"{target}.done").touch()
        analysis = work / f"analysis_{target}.json"
        if not analysis.exists():
            run_step([str(BIN / "vlforge-critic"), "analyze", "--store", store, "--split", split, "--limit",
                      str(args.limit), "--source", source, "--rewritten", target, "--output", str(analysis)],
                     work / f"analyze_{target}.log")
        out[name] = {**json.loads(analysis.read_text()), "clean_caption_recovered": exact_clean(store, split, target)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=10_000, help="the split's first N images")
    parser.add_argument("--seed", type=int, default=0, help="the corruption's seed")
    parser.add_argument("--rewriter", nargs=2, required=True, metavar=("PRESET", "CHECKPOINT"))
    parser.add_argument("--scope", choices=sorted(PROMPTS), default="caption",
                        help="whole-caption rewrites (critic:rewrite_tiny.yaml) or one sentence at a time "
                             "(critic:rewrite_sentence_tiny.yaml)")
    parser.add_argument("--tag", default="", help="appended to the rewrite's source name (one per trained model)")
    parser.add_argument("--work", type=Path, default=Path("runs/critic_rewrite/eval"))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    report = {"command": "python " + " ".join([str(Path(sys.argv[0])), *sys.argv[1:]]), "rewriter": args.rewriter,
              "scope": args.scope,
              "sources": {source: one_source(source, args, args.work) for source in SOURCES}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    for source, rows in report["sources"].items():
        for name, row in rows.items():
            before, after = row["before"], row["after"]
            print(f"{source} {name}: CHAIR_i {before['chair_i']:.1f} -> {after['chair_i']:.1f}, coverage "
                  f"{before['object_coverage']:.1f} -> {after['object_coverage']:.1f}, words {before['mean_words']:.1f}"
                  f" -> {after['mean_words']:.1f}, clean recovered {row['clean_caption_recovered']}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
