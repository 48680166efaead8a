"""`vlforge-store export STORE --format FMT --out PATH [--source S] [--kind K] [--split X] ...`: write a store in
a format other tools read (see ``vlforge.common.store.export``)."""

from __future__ import annotations

import argparse
import json

from vlforge.common.store import CaptionStore
from vlforge.common.store.export import EXPORT_FORMATS, export_store
from vlforge.common.store.export_select import NOT_IMAGE_CAPTIONS, ExportSelection

DESCRIPTION = f"""\
Export STORE. Formats:
  jsonl       lossless: ids, splits, every caption with source/kind/provenance/scores, meta; images beside it
              (or --embed-images as base64); `vlforge-store ingest NEW --format jsonl --annotations OUT` reads it back
  coco        COCO captions JSON
  csv, tsv    open_clip CsvDataset (columns filepath, title); images written beside it
  webdataset  tar shards in the folder OUT (--samples-per-shard), for open_clip --train-data / webdataset
  llava       LLaVA conversation JSON (--qa adds meta["qa"] conversations)
  parquet     image bytes + text per row (LAION / Hugging Face layout; needs pyarrow)
--source / --kind / --split select captions (repeatable). All formats but jsonl leave out the kinds
{', '.join(NOT_IMAGE_CAPTIONS)} (not captions of the image) unless --kind names them."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write the store as jsonl, coco, csv/tsv, webdataset, llava or parquet",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("store")
    p.add_argument("--format", required=True, choices=tuple(EXPORT_FORMATS))
    p.add_argument("--out", required=True, help="output file (webdataset: output folder)")
    p.add_argument("--source", action="append", default=[], help="keep captions of this source (repeatable)")
    p.add_argument("--kind", action="append", default=[], help="keep captions of this kind (repeatable)")
    p.add_argument("--split", action="append", default=[], help="keep images of this split (repeatable)")
    p.add_argument("--images-dir", help="jsonl, coco, csv, tsv, llava: folder for images (default <out stem>_images)")
    p.add_argument("--embed-images", action="store_true", help="jsonl: embed images as base64")
    p.add_argument("--samples-per-shard", type=int, default=1000, help="webdataset: samples per shard (1000)")
    p.add_argument("--qa", action="store_true", help="llava: add each record's meta['qa'] as a conversation")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(func=_export)


def _export(args: argparse.Namespace) -> int:
    selection = ExportSelection.of(args.source, args.kind, args.split)
    options = {"jsonl": {"images_dir": args.images_dir, "embed_images": args.embed_images},
               "coco": {"images_dir": args.images_dir}, "csv": {"images_dir": args.images_dir},
               "tsv": {"images_dir": args.images_dir}, "llava": {"images_dir": args.images_dir, "qa": args.qa},
               "webdataset": {"samples_per_shard": args.samples_per_shard}}.get(args.format, {})
    with CaptionStore(args.store) as store:
        summary = export_store(store, args.format, args.out, selection, **options)
    print(json.dumps(summary.to_dict(), sort_keys=True) if args.json else summary.to_text())
    return 0
