"""How well a decomposer recovers a ShapesWorld scene's atomic facts from its gt dense caption (#12 item 1).

For each record of a split, the caption is decomposed and the facts each sentence states on its own
(``shapes_facts.sentence_facts``) are compared with the scene graph's facts: micro precision = recovered true
facts / recovered facts, micro recall = recovered true facts / scene facts.

Two caption variants: ``dense`` (the stored gt dense caption) and ``dense_pronouns`` (each sentence whose subject
is "The <colour> <shape>" of an object the previous sentence names starts with "It" instead), the case pronoun
resolution exists for. Sentence splitting alone is measured beside the rule-based decomposer; ``--backend
generative`` adds a ``GenerativeDecomposer`` (``--source``, ``--checkpoint``, ``--prompt``) beside both, with the
count of captions whose output held no sentence (``empty_outputs``).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from typing import Any

from jsonargparse import ArgumentError, ArgumentParser

from vlforge.common.atomic_file import write_atomically
from vlforge.common.errors import VLForgeError
from vlforge.common.records import ImageRecord
from vlforge.common.shapes.vocabulary import COLOURS, SHAPES
from vlforge.common.store import CaptionStore
from vlforge.common.text import split_sentences
from vlforge.critic.data import gt_dense_caption
from vlforge.critic.decompose import Decomposer, RuleBasedDecomposer
from vlforge.critic.decompose_generative import GenerativeDecomposer
from vlforge.critic.shapes_facts import caption_facts, scene_facts

_DEFINITE_SUBJECT = re.compile(rf"^The ({'|'.join(COLOURS)}) ({'|'.join(SHAPES)})\b")
DECOMPOSERS: dict[str, Decomposer] = {"sentence_split": split_sentences, "rule_based": RuleBasedDecomposer()}
BACKENDS = ("rule_based", "generative")
VARIANTS = ("dense", "dense_pronouns")


def pronominalise(caption: str) -> tuple[str, int]:
    """The caption with "It" for each definite subject that the previous sentence names; and how many."""
    sentences = split_sentences(caption)
    changed = 0
    for i in range(1, len(sentences)):
        match = _DEFINITE_SUBJECT.match(sentences[i])
        if match and re.search(rf"\b{match.group(1)} {match.group(2)}\b", sentences[i - 1], re.IGNORECASE):
            sentences[i] = "It" + sentences[i][match.end():]
            changed += 1
    return " ".join(sentences), changed


def _decompose_all(decomposer: Decomposer, captions: list[str]) -> list[list[str]]:
    batched = getattr(decomposer, "decompose_batch", None)
    return batched(captions) if batched is not None else [decomposer(caption) for caption in captions]


def measure_decomposition(records: Sequence[ImageRecord],
                          decomposers: dict[str, Decomposer] | None = None) -> dict[str, Any]:
    """Precision and recall (percent) per variant and decomposer (default ``DECOMPOSERS``), with the counts behind
    them."""
    decomposers = DECOMPOSERS if decomposers is None else decomposers
    results: dict[str, Any] = {}
    for variant in VARIANTS:
        captions, pronouns = [], 0
        for record in records:
            caption = gt_dense_caption(record)
            if variant == "dense_pronouns":
                caption, changed = pronominalise(caption)
                pronouns += changed
            captions.append(caption)
        results[variant] = {"pronouns": pronouns}
        for name, decomposer in decomposers.items():
            true_positive = recovered = gold_total = 0
            for record, sentences in zip(records, _decompose_all(decomposer, captions), strict=True):
                gold = scene_facts(record.meta["scene_graph"])
                got = caption_facts(sentences)
                true_positive += len(got & gold)
                recovered += len(got)
                gold_total += len(gold)
            results[variant][name] = {"precision": 100.0 * true_positive / max(recovered, 1),
                                      "recall": 100.0 * true_positive / max(gold_total, 1),
                                      "true_facts": true_positive, "recovered_facts": recovered,
                                      "scene_facts": gold_total}
    return {"images": len(records), "results": results}


def _decomposers(args: Any) -> dict[str, Decomposer]:
    if args.backend not in BACKENDS:
        raise VLForgeError(f"--backend {args.backend!r} is not one of {', '.join(BACKENDS)}")
    if args.backend == "rule_based":
        return DECOMPOSERS
    if not args.source:
        raise VLForgeError("--backend generative needs --source (e.g. preset:llama_tiny with --checkpoint)")
    generative = GenerativeDecomposer(args.source, args.checkpoint, args.prompt, args.max_new_tokens,
                                      args.batch_size)
    return {**DECOMPOSERS, "generative": generative}


def main(argv: Sequence[str] | None = None) -> int:
    """``--store S --split test [--limit N] --output results.json [--backend generative --source M --checkpoint C
    --prompt short]``: measure and write JSON; 2 on a mistake."""
    parser = ArgumentParser(prog="vlforge-critic decompose-eval", exit_on_error=False, allow_abbrev=False)
    parser.add_argument("--store", type=str, required=True)
    parser.add_argument("--split", type=str, default="test")
    parser.add_argument("--limit", type=int | None, default=None)
    parser.add_argument("--output", type=str | None, default=None)
    parser.add_argument("--backend", type=str, default="rule_based", help=" or ".join(BACKENDS))
    parser.add_argument("--source", type=str | None, default=None, help="generative: the model common.lm loads")
    parser.add_argument("--checkpoint", type=str | None, default=None, help="generative: its vlforge checkpoint")
    parser.add_argument("--prompt", type=str, default="fig12", help="generative: prompt name (fig12, short)")
    parser.add_argument("--max_new_tokens", type=int, default=256)
    parser.add_argument("--batch_size", type=int, default=8)
    try:
        try:
            args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
        except ArgumentError as err:
            raise VLForgeError(str(err).splitlines()[0]) from None
        records = [r for r in CaptionStore(args.store).iter_records(split=args.split)][:args.limit]
        if not records:
            raise VLForgeError(f"store {args.store}: split {args.split!r} has no records")
        decomposers = _decomposers(args)
        measured = measure_decomposition(records, decomposers)
        generative = decomposers.get("generative")
        if isinstance(generative, GenerativeDecomposer):
            measured["generative"] = {"source": args.source, "checkpoint": args.checkpoint, "prompt": args.prompt,
                                      "empty_outputs": generative.empty_outputs}
        text = json.dumps({"store": args.store, "split": args.split, **measured}, indent=2)
        if args.output:
            write_atomically(args.output, text + "\n", inputs=[args.store, *filter(None, [args.checkpoint])])
    except VLForgeError as err:
        print(f"vlforge-critic decompose-eval: error: {err}", file=sys.stderr)
        return 2
    print(text)
    return 0
