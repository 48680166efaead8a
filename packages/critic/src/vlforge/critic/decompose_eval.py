"""How well a decomposer recovers a ShapesWorld scene's atomic facts from its gt dense caption (#12 item 1).

For each record of a split, the caption is decomposed and the facts each sentence states on its own
(``shapes_facts.sentence_facts``) are compared with the scene graph's facts: micro precision = recovered true
facts / recovered facts, micro recall = recovered true facts / scene facts.

Two caption variants: ``dense`` (the stored gt dense caption) and ``dense_pronouns`` (each sentence whose subject
is "The <colour> <shape>" of an object the previous sentence names starts with "It" instead), the case pronoun
resolution exists for. Sentence splitting alone is measured beside the rule-based decomposer.
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
from vlforge.critic.decompose import Decomposer, RuleBasedDecomposer
from vlforge.critic.shapes_facts import caption_facts, scene_facts

_DEFINITE_SUBJECT = re.compile(rf"^The ({'|'.join(COLOURS)}) ({'|'.join(SHAPES)})\b")
DECOMPOSERS: dict[str, Decomposer] = {"sentence_split": split_sentences, "rule_based": RuleBasedDecomposer()}
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


def _dense_caption(record: ImageRecord) -> str:
    dense = record.captions_by(source="gt", kind="dense")
    if not dense:
        raise VLForgeError(f"record {record.image_id}: no gt dense caption")
    return dense[0].text


def measure_decomposition(records: Sequence[ImageRecord]) -> dict[str, Any]:
    """Precision and recall (percent) per variant and decomposer, with the counts behind them."""
    results: dict[str, Any] = {}
    for variant in VARIANTS:
        captions, pronouns = [], 0
        for record in records:
            caption = _dense_caption(record)
            if variant == "dense_pronouns":
                caption, changed = pronominalise(caption)
                pronouns += changed
            captions.append(caption)
        results[variant] = {"pronouns": pronouns}
        for name, decomposer in DECOMPOSERS.items():
            true_positive = recovered = gold_total = 0
            for record, caption in zip(records, captions):
                gold = scene_facts(record.meta["scene_graph"])
                got = caption_facts(decomposer(caption))
                true_positive += len(got & gold)
                recovered += len(got)
                gold_total += len(gold)
            results[variant][name] = {"precision": 100.0 * true_positive / max(recovered, 1),
                                      "recall": 100.0 * true_positive / max(gold_total, 1),
                                      "true_facts": true_positive, "recovered_facts": recovered,
                                      "scene_facts": gold_total}
    return {"images": len(records), "results": results}


def main(argv: Sequence[str] | None = None) -> int:
    """``--store S --split test [--limit N] --output results.json``: measure and write JSON; 2 on a mistake."""
    parser = ArgumentParser(prog="vlforge-critic decompose-eval", exit_on_error=False, allow_abbrev=False)
    parser.add_argument("--store", type=str, required=True)
    parser.add_argument("--split", type=str, default="test")
    parser.add_argument("--limit", type=int | None, default=None)
    parser.add_argument("--output", type=str | None, default=None)
    try:
        try:
            args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
        except ArgumentError as err:
            raise VLForgeError(str(err).splitlines()[0]) from None
        records = [r for r in CaptionStore(args.store).iter_records(split=args.split)][:args.limit]
        if not records:
            raise VLForgeError(f"store {args.store}: split {args.split!r} has no records")
        text = json.dumps({"store": args.store, "split": args.split, **measure_decomposition(records)}, indent=2)
        if args.output:
            write_atomically(args.output, text + "\n", inputs=[args.store])
    except VLForgeError as err:
        print(f"vlforge-critic decompose-eval: error: {err}", file=sys.stderr)
        return 2
    print(text)
    return 0
