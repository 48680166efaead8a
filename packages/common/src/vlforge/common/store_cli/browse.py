"""`vlforge-store ids STORE [--split S] [--source X] [--limit N] [--random --seed K]` and `vlforge-store sample
STORE [-n N] [--split S] [--source X] [--seed K]`: find records to look at."""

from __future__ import annotations

import argparse
import json

from vlforge.common.store import CaptionStore
from vlforge.common.store.export import record_json
from vlforge.common.store.listing import pick_ids


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ids", help="list image ids (by split / source; the first N or N at random)")
    p.add_argument("store")
    p.add_argument("--split", help="only this split")
    p.add_argument("--source", help="only images with a caption of this source")
    p.add_argument("--limit", type=int, help="at most N ids")
    p.add_argument("--random", action="store_true", help="draw the ids at random (with --seed)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_ids)

    p = sub.add_parser("sample", help="print a few records at random, readably")
    p.add_argument("store")
    p.add_argument("-n", "--num", type=int, default=3, help="how many records (3)")
    p.add_argument("--split", help="only this split")
    p.add_argument("--source", help="only images with a caption of this source")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=_sample)


def _ids(args: argparse.Namespace) -> int:
    with CaptionStore(args.store) as store:
        ids = pick_ids(store, args.split, args.source, args.limit, args.random, args.seed)
    for image_id in ids:
        print(image_id)
    return 0


def _sample(args: argparse.Namespace) -> int:
    with CaptionStore(args.store) as store:
        records = [store.get(i) for i in pick_ids(store, args.split, args.source, args.num, True, args.seed)]
    for record in records:
        if args.json:
            print(json.dumps(record_json(record), ensure_ascii=False, sort_keys=True))
            continue
        image = (f"{len(record.image_bytes)} embedded bytes" if record.image_bytes is not None
                 else f"path {record.image_path}")
        print(f"{record.image_id}  split={record.split}  {record.width}x{record.height}  image: {image}")
        for caption in record.captions:
            print(f"  [{caption.source}/{caption.kind}] {caption.text}")
        if record.meta:
            print(f"  meta keys: {', '.join(sorted(record.meta))}")
        print()
    return 0
