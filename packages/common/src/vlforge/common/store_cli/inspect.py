"""`vlforge-store` subcommands that read or combine stores: stats, show, merge, verify."""

from __future__ import annotations

import argparse
import json
import sys

from vlforge.common.store import CaptionStore
from vlforge.common.store.export import record_json
from vlforge.common.store.listing import caption_breakdown
from vlforge.common.store.merge import merge_stores
from vlforge.common.store.verify import verify_store

_MAX_PROBLEMS_SHOWN = 50


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stats", help="image / caption counts by split, and by source and kind with caption lengths")
    p.add_argument("store")
    p.add_argument("--counts-only", action="store_true",
                   help="only the stored counts (no scan): by source and by kind separately, no lengths")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_stats)

    p = sub.add_parser("show", help="print one record (embedded image bytes are shown as their length)")
    p.add_argument("store")
    p.add_argument("image_id")
    p.add_argument("--json", action="store_true", help="print the record as one JSON object")
    p.set_defaults(func=_show)

    p = sub.add_parser("merge", help="merge stores into OUT (captions deduplicated, image paths re-rooted)")
    p.add_argument("out")
    p.add_argument("stores", nargs="+")
    p.add_argument("--embed-images", action="store_true", help="embed path images instead of re-rooting them")
    p.set_defaults(func=_merge)

    p = sub.add_parser("verify", help="check every record, the split index, the counts and (by default) the images")
    p.add_argument("store")
    p.add_argument("--skip-images", action="store_true", help="do not decode images")
    p.add_argument("--image-root", help="look for path images here instead of the recorded image root")
    p.set_defaults(func=_verify)


def _stats(args: argparse.Namespace) -> int:
    with CaptionStore(args.store) as store:
        counts = dict(store.counts())
        if not args.counts_only and counts["captions"]:
            counts.update(caption_breakdown(store))
    if args.json:
        print(json.dumps(counts, sort_keys=True))
        return 0
    print(f"{args.store}: {counts['images']} images, {counts['captions']} captions")
    for name, value in sorted(counts["splits"].items()):
        print(f"  split  {name:<24} {value}")
    if "by_source_kind" not in counts:
        for title, table in (("source", counts["by_source"]), ("kind", counts["by_kind"])):
            for name, value in sorted(table.items()):
                print(f"  {title:<6} {name:<24} {value}")
        return 0
    for source, kinds in counts["by_source_kind"].items():
        length = counts["lengths"][source]
        print(f"  source {source:<24} {sum(kinds.values())} captions, words mean {length['mean']:.1f} "
              f"(min {length['min']}, median {length['median']:g}, p90 {length['p90']}, max {length['max']})")
        for kind, value in kinds.items():
            print(f"    kind {kind:<22} {value}")
    return 0


def _show(args: argparse.Namespace) -> int:
    with CaptionStore(args.store) as store:
        record = store.get(args.image_id)
    view = record_json(record)
    if args.json:
        print(json.dumps(view, ensure_ascii=False, sort_keys=True))
        return 0
    image = (f"{view['image_bytes']} embedded bytes" if view["image_bytes"] is not None
             else f"path {view['image_path']}")
    print(f"{record.image_id}  split={record.split}  {record.width}x{record.height}  image: {image}")
    for caption in record.captions:
        print(f"  [{caption.source}/{caption.kind}] {caption.text}")
    if record.meta:
        print(f"  meta: {json.dumps(record.meta, ensure_ascii=False)[:400]}")
    return 0


def _merge(args: argparse.Namespace) -> int:
    result = merge_stores(args.out, args.stores, embed_images=args.embed_images)
    print(f"merged {len(args.stores)} stores into {args.out}: {result.added} images added, {result.merged} merged, "
          f"{result.captions_added} captions added, {result.split_conflicts} split conflicts (first split kept), "
          f"{result.image_conflicts} id conflicts (same id, different image: not merged)")
    if result.image_conflicts:
        shown = ", ".join(repr(i) for i in result.conflict_ids[:_MAX_PROBLEMS_SHOWN])
        print(f"warning: {result.image_conflicts} records were left out because OUT holds their id for a different "
              f"image (they stay in their input store): {shown}", file=sys.stderr)
    return 0


def _verify(args: argparse.Namespace) -> int:
    with CaptionStore(args.store, image_root=args.image_root) as store:
        report = verify_store(store, check_images=not args.skip_images)
    for line in report.problems[:_MAX_PROBLEMS_SHOWN]:
        print(f"problem: {line}")
    if len(report.problems) > _MAX_PROBLEMS_SHOWN:
        print(f"... and {len(report.problems) - _MAX_PROBLEMS_SHOWN} more")
    print(f"{args.store}: {report.records} records, {report.images_checked} images decoded, "
          f"{len(report.problems)} problems")
    return 0 if report.ok else 1
