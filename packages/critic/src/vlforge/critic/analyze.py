"""`vlforge-critic analyze`: a caption source before and after critic-rewrite (#12 item 6).

    vlforge-critic analyze --store data/shapesworld --split test --source gt --output runs/analyze.json

For ``source`` and ``<source>+critic`` (or ``--rewritten``) over the images of ``split`` (its first ``limit``) that
have both: mean words and sentences, and the critic's per-sentence verdicts (consistent / inconsistent / unscored)
and cut sentences; on a ShapesWorld store (records with a scene graph) also CHAIR_i / CHAIR_s
(``vlforge.common.metrics.chair``, ShapesWorld object table) and object coverage = the share of an image's scene
shapes that its caption names (mean over images, %).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Sequence
from typing import Any

from vlforge.common.atomic_file import write_atomically
from vlforge.common.console import ToolParser
from vlforge.common.errors import VLForgeError
from vlforge.common.metrics.chair import chair, object_mentions, scene_objects
from vlforge.common.records import ImageRecord
from vlforge.common.store import CaptionStore
from vlforge.critic.critic_rewrite import critic_source

PROG = "vlforge-critic analyze"


def _first(record: ImageRecord, source: str) -> str | None:
    captions = record.captions_by(source=source)
    return captions[0].text if captions else None


def caption_stats(records: list[ImageRecord], texts: list[str]) -> dict[str, Any]:
    """Mean words; with scene graphs, CHAIR and object coverage."""
    out: dict[str, Any] = {"images": len(texts), "mean_words": sum(len(t.split()) for t in texts) / len(texts)}
    if all("scene_graph" in r.meta for r in records):
        scenes = [set(scene_objects(r.meta["scene_graph"])) for r in records]
        result = chair(texts, scenes)
        coverage = [len(scene & set(object_mentions(text))) / len(scene) for scene, text in zip(scenes, texts)]
        out |= {"chair_i": result.chair_i, "chair_s": result.chair_s,
                "object_coverage": 100.0 * sum(coverage) / len(coverage)}
    return out


def analyze_rewrite(store: str, split: str, source: str, limit: int | None = None,
                    rewritten: str | None = None) -> dict[str, Any]:
    """The before / after table of the module docstring; ``rewritten``: the rewrite's source when predict wrote
    another than ``<source>+critic`` (its ``target``)."""
    target = rewritten or critic_source(source)
    with CaptionStore(store, readonly=True) as s:
        ids = s.ids(split)
        records = [r for r in (s.get(i) for i in (ids if limit is None else ids[:limit]))
                   if _first(r, source) is not None and _first(r, target) is not None]
    if not records:
        raise VLForgeError(f"store {store}: no image of split {split!r} has captions of both {source!r} and {target!r}"
                           f" (run `vlforge-critic predict` first)")
    verdicts: Counter[str] = Counter()
    cut = 0
    for record in records:
        caption = record.captions_by(source=target)[0]
        verdicts.update(row["verdict"] for row in caption.scores.get("critic_sentences", []))
        cut += int(caption.provenance.get("sentences_cut", 0))
    return {"store": store, "split": split, "source": source, "rewritten": target,
            "before": caption_stats(records, [_first(r, source) for r in records]),
            "after": caption_stats(records, [_first(r, target) for r in records]),
            "sentences": dict(verdicts), "sentences_cut": cut}


def main(argv: Sequence[str] | None = None) -> int:
    parser = ToolParser(prog=PROG, description="A caption source before and after critic-rewrite.")
    parser.add_argument("--store", required=True)
    parser.add_argument("--split", default="test")
    parser.add_argument("--source", required=True, help="the source critic-rewrite checked")
    parser.add_argument("--rewritten", default=None,
                        help="the rewrite's source, when predict wrote another than <source>+critic (its target)")
    parser.add_argument("--limit", type=int, default=None, help="the first N images of the split")
    parser.add_argument("--output", default=None, help="write the table here as JSON")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    report = analyze_rewrite(args.store, args.split, args.source, args.limit, args.rewritten)
    if args.output:
        write_atomically(args.output, json.dumps(report, indent=2), inputs=[args.store])
    for side in ("before", "after"):
        row = report[side]
        print(f"{PROG}: {side}: " + ", ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}"
                                               for k, v in row.items()))
    print(f"{PROG}: sentences {report['sentences']}, cut {report['sentences_cut']}")
    return 0
