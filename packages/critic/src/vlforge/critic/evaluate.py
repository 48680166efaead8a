"""`vlforge-critic evaluate`: verdict accuracy of a trained critic on held-out ShapesWorld images (#12, measurable).

    vlforge-critic evaluate --store data/shapesworld --split test --checkpoint runs/.../last.ckpt \
        --critic_source preset:llava_tiny --instruction short --modes probability critique --output acc.json

The sentences are ``critic_examples`` of each record of ``split`` (a split the critic never trained on): true
atomic sentences and false ones of each error type, as many true as false per sentence template; the label is the
scene graph's verdict.
Per scoring mode: accuracy overall, per error type ("none" = true sentences), on true and on false sentences
(balanced accuracy = their mean), per sentence template (``sentence_template``: a critic that reads only the text
scores by template), and the unscored count (an unscored sentence counts as wrong). The modes run
interleaved chunk by chunk, so the throughput ratio (probability-mode sentences/s over critique-mode sentences/s)
compares them under the same machine load.
"""

from __future__ import annotations

import json
import random
import sys
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import torch

from vlforge.common.atomic_file import write_atomically
from vlforge.common.console import ToolParser
from vlforge.common.errors import VLForgeError
from vlforge.common.lm.model import GenerativeModel
from vlforge.common.progress import track
from vlforge.common.store import CaptionStore
from vlforge.critic.scoring import SCORING_MODES, score_sentences
from vlforge.critic.shapes_critic_data import CriticExample, critic_examples, sentence_template

PROG = "vlforge-critic evaluate"
EVAL_SEED = 1_000_003  # the false sentences of evaluation differ from make-data's seed-0 draws


def held_out_examples(store: str, split: str, limit: int | None, seed: int = EVAL_SEED) -> list[CriticExample]:
    """Critic examples (balanced per sentence template) of the first ``limit`` records of ``split``."""
    examples: list[CriticExample] = []
    with CaptionStore(store, readonly=True) as source:
        for number, record in enumerate(source.iter_records(split=split)):
            if limit is not None and number >= limit:
                break
            if "scene_graph" in record.meta and "atomic_facts" in record.meta:
                examples += critic_examples(record, random.Random(f"critic-eval/{seed}/{record.image_id}"))
    if not examples:
        raise VLForgeError(f"store {store}: split {split!r} has no ShapesWorld records")
    return examples


def accuracy_table(examples: list[CriticExample], verdicts: list[bool | None]) -> dict[str, Any]:
    """Accuracy overall / per error type / on true and false sentences; unscored counts as wrong."""
    right, total, by_template = Counter(), Counter(), {}
    for example, verdict in zip(examples, verdicts, strict=True):
        for group in ("all", example.error_type, "true" if example.consistent else "false"):
            total[group] += 1
            right[group] += verdict is example.consistent
        cell = by_template.setdefault(f"{example.error_type}: {sentence_template(example.sentence)}", [0, 0])
        cell[0] += verdict is example.consistent
        cell[1] += 1
    table = {g: 100.0 * right[g] / total[g] for g in total}
    return {"accuracy": table["all"], "balanced_accuracy": (table.get("true", 0.0) + table.get("false", 0.0)) / 2,
            "per_error_type": {g: table[g] for g in sorted(total) if g not in ("all", "true", "false")},
            "on_true": table.get("true"), "on_false": table.get("false"), "sentences": total["all"],
            "per_error_type_sentences": {g: total[g] for g in sorted(total) if g not in ("all", "true", "false")},
            "unscored": sum(v is None for v in verdicts),
            "per_template": {k: {"accuracy": 100.0 * r / n, "sentences": n}
                             for k, (r, n) in sorted(by_template.items())}}


def evaluate_critic(model: Any, processor: Any, examples: list[CriticExample], images: dict[str, Any],
                    modes: Sequence[str], instruction: str, prompt_style: str = "chat", batch_size: int = 16,
                    decoding: dict[str, Any] | None = None, chunk: int = 64) -> dict[str, Any]:
    """Accuracy tables per mode (interleaved chunks) and, with both modes, the throughput ratio."""
    verdicts: dict[str, list[bool | None]] = {m: [] for m in modes}
    seconds = dict.fromkeys(modes, 0.0)
    for start in track(range(0, len(examples), chunk), PROG, unit="chunks"):
        part = examples[start:start + chunk]
        for mode in modes:
            began = time.perf_counter()
            scores = score_sentences(model, processor, [images[e.image_id] for e in part], [e.sentence for e in part],
                                     mode, instruction, prompt_style, decoding, batch_size)
            seconds[mode] += time.perf_counter() - began
            verdicts[mode] += [s.verdict for s in scores]
    out: dict[str, Any] = {mode: accuracy_table(examples, verdicts[mode]) for mode in modes}
    if set(modes) == set(SCORING_MODES):
        out["throughput_ratio_probability_over_critique"] = seconds["critique"] / max(seconds["probability"], 1e-9)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = ToolParser(prog=PROG, description="Verdict accuracy of a critic on held-out ShapesWorld images.")
    parser.add_argument("--store", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--critic_source", default="preset:llava_tiny", help="preset, hub name or folder")
    parser.add_argument("--checkpoint", default=None, help="critic SFT checkpoint (vlforge-critic fit)")
    parser.add_argument("--instruction", default="fig14", help="the instruction the critic was trained with")
    parser.add_argument("--modes", nargs="+", default=list(SCORING_MODES), choices=SCORING_MODES)
    parser.add_argument("--limit", type=int, default=200, help="the first N records of the split")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--max_new_tokens", type=int, default=384, help="critique mode's generation length")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", default=None, help="write the results here as JSON")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    torch.set_num_threads(args.threads)
    critic = GenerativeModel(args.critic_source, weights=args.checkpoint)
    examples = held_out_examples(args.store, args.split, args.limit)
    with CaptionStore(args.store, readonly=True) as store:
        images = {i: store.load_image(store.get(i)) for i in dict.fromkeys(e.image_id for e in examples)}
    decoding = {"max_new_tokens": args.max_new_tokens, "num_beams": 1, "do_sample": False}
    results = evaluate_critic(critic.model, critic.processor, examples, images, args.modes, args.instruction,
                              batch_size=args.batch_size, decoding=decoding)
    results["settings"] = {k: v for k, v in vars(args).items() if k != "output"} | {"images": len(images)}
    if args.output:
        write_atomically(args.output, json.dumps(results, indent=2), inputs=[args.store])
    for mode in args.modes:
        r = results[mode]
        print(f"{PROG}: {mode}: accuracy {r['accuracy']:.1f} % (balanced {r['balanced_accuracy']:.1f} %) on "
              f"{r['sentences']} sentences of {len(images)} images, unscored {r['unscored']}; per error type "
              + ", ".join(f"{k} {v:.1f}" for k, v in r["per_error_type"].items()))
    return 0
