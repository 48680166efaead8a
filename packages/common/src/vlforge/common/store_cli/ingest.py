"""`vlforge-store ingest STORE --format FMT --annotations PATH [--images DIR] [--embed-images]
[--source NAME] [--split NAME] [--batch-size N] [--json]`: bring a dataset's annotations into a caption store
(created if absent)."""

from __future__ import annotations

import argparse
import datetime as _dt
import os

from vlforge.common.errors import VLForgeError
from vlforge.common.ingest import FORMATS, ingest
from vlforge.common.store import CaptionStore

DESCRIPTION = """\
Ingest a dataset into STORE (created if absent). Formats:
  coco        COCO captions JSON; images in --images/<file_name>
  karpathy    dataset_coco.json / dataset_flickr30k.json; splits from the file; --images/<filepath>/<filename>
  cc3m        TSV caption<TAB>url; --images is the img2dataset folder (00000/000000000.jpg); key = row number
  llava       LLaVA JSON (image + conversations; the first gpt answer is the caption);
              --images default: the file's folder
  jsonl       {"image": path, "caption": str or [str]} per line, or the lossless lines `export --format jsonl`
              writes; paths relative to --images (default: the file's folder)
  webdataset  tar shards (a file, a glob or 'shard-{000000..000099}.tar') with key.jpg + key.txt or key.json;
              images stored embedded
  img2dataset an img2dataset output folder (files or webdataset layout), or its input table (TSV/CSV/parquet
              with caption and url columns) with --images the output folder; img2dataset's keys; per-sample
              JSON kept in meta; failed downloads counted
Captions get --source (default alt_text for cc3m, webdataset and img2dataset, gt otherwise) and kind "free"
(lossless jsonl captions keep their own).
Bad records are skipped and counted by reason; exit status 0 when at least one record went in."""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("ingest", description=DESCRIPTION,
                            help="ingest a dataset (coco, karpathy, cc3m, llava, jsonl, webdataset, img2dataset)",
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("store", help="the store directory (created if it does not exist)")
    parser.add_argument("--format", required=True, choices=sorted(FORMATS), dest="fmt")
    parser.add_argument("--annotations", required=True,
                        help="the annotation file (webdataset: a shard, a glob or brace notation; "
                             "img2dataset: the output folder or the input table)")
    parser.add_argument("--images", default=None, help="the images root folder")
    parser.add_argument("--embed-images", action="store_true",
                        help="store the encoded image bytes instead of paths relative to the image root")
    parser.add_argument("--source", default=None,
                        help="caption source (default: alt_text for cc3m and webdataset, else gt)")
    parser.add_argument("--split", default=None,
                        help="split for every record (default: from the file, else train)")
    parser.add_argument("--batch-size", type=int, default=500,
                        help="records per store transaction (default 500)")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    parser.set_defaults(func=run_ingest)


def run_ingest(args: argparse.Namespace) -> int:
    store = CaptionStore.create(args.store)
    try:
        summary = ingest(store, args.fmt, args.annotations, args.images, embed_images=args.embed_images,
                         source=args.source, split=args.split, batch_size=args.batch_size)
        print(summary.to_json() if args.json else summary.to_text(), flush=True)
        if not summary.went_in:
            raise VLForgeError(summary.failure_reason())
        store.set_info(ingests=[*store.info.get("ingests", []), {
            "format": args.fmt, "annotations": os.path.abspath(args.annotations),
            "images": os.path.abspath(args.images) if args.images else None,
            "embed_images": args.embed_images,
            "time": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
            "added": summary.added, "merged": summary.merged, "captions_added": summary.captions_added}])
    except BaseException:
        # Undo only this run's creation: the store goes only if this run created it and no image and no other
        # writer reached it (checked under the writer lock; see CaptionStore.remove_if_unused).
        store.remove_if_unused()
        raise
    finally:
        store.close()
    return 0
