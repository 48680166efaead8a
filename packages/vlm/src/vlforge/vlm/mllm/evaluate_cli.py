"""`vlforge-vlm evaluate-mllm`: an MLLM (a LLaVA stage checkpoint, or a Hugging Face LLaVA folder) on ShapesWorld
VQA per question type, POPE with random / popular / adversarial negatives, CHAIR of its own captions, and
optionally the questions of a LLaVA JSON file (exact match), into one JSON file.

    vlforge-vlm evaluate-mllm --checkpoint runs/llava_instruct_tiny/version_0/checkpoints/last.ckpt \\
        --store data/shapesworld --split test --limit 200 --out eval/llava_instruct_tiny.json

VQA accuracy is exact match after normalisation (``vlforge.common.metrics.vqa``); POPE reports accuracy,
precision, recall, F1 and yes-ratio as RUCAIBox/POPE does (``vlforge.common.metrics.pope``); CHAIR_i / CHAIR_s
as Rohrbach et al. (``vlforge.common.metrics.chair``). The answers of every question go into the JSON too.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vlforge.common.atomic_file import write_atomically
from vlforge.common.console import ToolParser
from vlforge.common.errors import VLForgeError
from vlforge.common.progress import Progress
from vlforge.common.shapes.llava_qa import QA_TYPES, SHORT_ANSWER_PROMPT
from vlforge.common.shapes.pope import STRATEGIES as POPE_STRATEGIES
from vlforge.vlm.mllm.caption_hallucination import mllm_caption_chair
from vlforge.vlm.mllm.evaluate import evaluate_mllm
from vlforge.vlm.mllm.questions import llava_json_questions, shapes_pope_questions, shapes_vqa_questions

log = logging.getLogger(__name__)


def load_mllm(checkpoint: str | None, model_dir: str | None, run_config: str | None) -> tuple[Any, Any]:
    """``(model, processor)`` of a stage checkpoint (rebuilt from its run config) or of a transformers folder."""
    if (checkpoint is None) == (model_dir is None):
        raise VLForgeError("give one of --checkpoint (a LLaVA stage .ckpt) and --model (a Hugging Face LLaVA folder)")
    if checkpoint is not None:
        from vlforge.vlm.mllm.export import lit_module_from_checkpoint

        module = lit_module_from_checkpoint(checkpoint, run_config)
        return module.model.eval(), module.processor
    from transformers import AutoModelForImageTextToText, AutoProcessor

    try:
        return (AutoModelForImageTextToText.from_pretrained(model_dir).eval(), AutoProcessor.from_pretrained(model_dir))
    except (OSError, ValueError) as exc:
        raise VLForgeError(f"--model {model_dir}: cannot be loaded ({str(exc).splitlines()[0]})") from None


def answer_all(model: Any, processor: Any, questions: list[dict[str, Any]], batch_size: int,
               answer_prompt: str | None = SHORT_ANSWER_PROMPT) -> dict[str, Any]:
    """``evaluate_mllm`` with a progress bar / status lines."""
    with Progress("evaluate-mllm", total=len(questions), unit="questions") as bar:
        return evaluate_mllm(model, processor, questions, batch_size=batch_size, answer_prompt=answer_prompt,
                             progress=bar.advance_to)


def evaluate_shapes(model: Any, processor: Any, store: str, split: str, limit: int | None,
                    strategies: Sequence[str], chair_limit: int, batch_size: int, seed: int) -> dict[str, Any]:
    """``{"vqa": per type, "pope": {strategy: metrics}, "chair": {...}, "answers": [...], "captions": [...]}``."""
    questions = shapes_vqa_questions(store, split, limit, QA_TYPES)
    for strategy in strategies:
        questions += shapes_pope_questions(store, split, strategy, limit, seed=seed)
    log.info("evaluate-mllm: %d questions on %s/%s", len(questions), store, split)
    result = answer_all(model, processor, questions, batch_size)
    vqa = {k: v for k, v in result["vqa"].items() if not k.startswith("pope_")}
    vqa_types = [q["type"] for q in questions if not q["type"].startswith("pope_")]
    vqa["all"] = _pooled(result["answers"], vqa_types)
    out = {"vqa": vqa, "pope": {k.removeprefix("pope_"): v for k, v in result["pope"].items() if k.startswith("pope_")},
           "presence": result["pope"].get("presence"), "answers": result["answers"]}
    if chair_limit:
        captions = mllm_caption_chair(model, processor, store, split, limit=chair_limit, batch_size=batch_size)
        out["chair"], out["captions"] = captions["chair"], captions["captions"]
    return out


def _pooled(answers: list[dict[str, Any]], vqa_types: list[str]) -> dict[str, Any]:
    """VQA accuracy over the ShapesWorld QA types only (POPE questions are scored on their own)."""
    from vlforge.common.metrics.vqa import vqa_accuracy

    rows = [a for a in answers if a["type"] in set(vqa_types)]
    return vqa_accuracy([a["prediction"] for a in rows], [a["answer"] for a in rows], [a["type"] for a in rows])["all"]


def summary_lines(result: dict[str, Any]) -> list[str]:
    lines = []
    if "vqa" in result:
        lines.append("VQA accuracy: " + ", ".join(f"{k} {v['accuracy']:.3f} ({v['total']})"
                                                  for k, v in result["vqa"].items()))
    for strategy, metrics in result.get("pope", {}).items():
        lines.append(f"POPE {strategy}: " + ", ".join(f"{k} {metrics[k]:.3f}" for k in
                                                       ("accuracy", "precision", "recall", "f1", "yes_ratio")))
    if "chair" in result:
        lines.append("CHAIR: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                                           for k, v in result["chair"].items()))
    if "llava_json" in result:
        lines.append(f"LLaVA JSON exact match: {result['llava_json']['vqa']['all']['accuracy']:.3f}")
    return lines


def build_parser() -> ToolParser:
    parser = ToolParser(prog="vlforge-vlm evaluate-mllm",
                        description="Evaluate an MLLM: ShapesWorld VQA, POPE, CHAIR of its captions, LLaVA JSON.")
    parser.add_argument("--checkpoint", default=None, help="a LLaVA stage checkpoint (.ckpt in its run folder)")
    parser.add_argument("--run_config", default=None, help="the run's config.yaml if not beside the checkpoint")
    parser.add_argument("--model", default=None, help="or a Hugging Face LLaVA folder (vlforge-vlm export hf-llava)")
    parser.add_argument("--store", default=None, help="a ShapesWorld store (VQA, POPE, CHAIR)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=None, help="the first N images of the split")
    parser.add_argument("--pope", nargs="*", default=list(POPE_STRATEGIES), choices=POPE_STRATEGIES,
                        help="POPE negative sampling strategies (none: no POPE)")
    parser.add_argument("--chair_limit", type=int, default=64, help="images captioned for CHAIR (0: no CHAIR)")
    parser.add_argument("--llava_json", default=None, help="a LLaVA JSON question file (exact-match answers)")
    parser.add_argument("--images_root", default=None, help="the LLaVA JSON's images folder (default: its folder)")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0, help="POPE's negative sampling")
    parser.add_argument("--out", required=True, help="the JSON file to write")
    return parser


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.store is None and args.llava_json is None:
        raise VLForgeError("nothing to evaluate: give --store (ShapesWorld) and/or --llava_json")
    model, processor = load_mllm(args.checkpoint, args.model, args.run_config)
    result: dict[str, Any] = {"checkpoint": args.checkpoint, "model": args.model, "store": args.store,
                              "split": args.split, "limit": args.limit}
    if args.store is not None:
        result.update(evaluate_shapes(model, processor, args.store, args.split, args.limit, args.pope,
                                      args.chair_limit, args.batch_size, args.seed))
    if args.llava_json is not None:
        questions, skipped = llava_json_questions(args.llava_json, args.images_root)
        log.info("%s", skipped.to_text())
        scored = answer_all(model, processor, questions, args.batch_size, answer_prompt=None)
        result["llava_json"] = {"file": args.llava_json, "vqa": scored["vqa"], "skipped": dict(skipped.skipped),
                                "answers": scored["answers"]}
    out = Path(args.out)
    write_atomically(out, json.dumps(result, indent=1, sort_keys=True), [args.checkpoint, args.store, args.llava_json])
    for line in summary_lines(result):
        print(line)
    print(f"wrote {out}")
    return 0
