"""Export a store: the format table, the dispatcher, and ``record_json`` (the view ``show --json`` prints).

Formats (one module each): jsonl (lossless, reads back with ``ingest --format jsonl``), coco, csv / tsv
(open_clip ``CsvDataset``), webdataset (tar shards for open_clip / ``webdataset.WebDataset``), llava
(conversation JSON), parquet (LAION / Hugging Face layout, needs pyarrow). Every format takes the same
:class:`~vlforge.common.store.export_select.ExportSelection`; all but jsonl leave out negatives and queries unless
``--kind`` asks for them (see ``export_select``).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import partial
from typing import Any

from vlforge.common.atomic_file import check_output_path
from vlforge.common.errors import VLForgeError
from vlforge.common.progress import track
from vlforge.common.records import ImageRecord
from vlforge.common.store.export_coco import export_coco
from vlforge.common.store.export_csv import export_csv
from vlforge.common.store.export_jsonl import export_jsonl
from vlforge.common.store.export_llava import export_llava
from vlforge.common.store.export_parquet import export_parquet
from vlforge.common.store.export_select import ExportSelection, ExportSummary, select_records
from vlforge.common.store.export_webdataset import export_webdataset
from vlforge.common.store.lmdb_store import CaptionStore

# name -> (writer, lossless: keeps every caption kind by default)
EXPORT_FORMATS: dict[str, tuple[Callable[..., None], bool]] = {
    "jsonl": (export_jsonl, True),
    "coco": (export_coco, False),
    "csv": (partial(export_csv, separator=","), False),
    "tsv": (partial(export_csv, separator="\t"), False),
    "webdataset": (export_webdataset, False),
    "llava": (export_llava, False),
    "parquet": (export_parquet, False),
}


def export_store(store: CaptionStore, fmt: str, out: str | os.PathLike,
                 selection: ExportSelection | None = None, **options: Any) -> ExportSummary:
    """Write the selected records of ``store`` as ``fmt`` to ``out`` (a file; a folder for webdataset).

    options: images_dir (jsonl, coco, csv, tsv, llava), embed_images (jsonl), samples_per_shard and prefix
    (webdataset), qa (llava), rows_per_group (parquet).
    """
    if fmt not in EXPORT_FORMATS:
        raise VLForgeError(f"unknown export format {fmt!r}; one of {', '.join(EXPORT_FORMATS)}")
    writer, lossless = EXPORT_FORMATS[fmt]
    selection = selection or ExportSelection()
    if not lossless:
        selection = selection.for_caption_format()
    out = check_output_path(out, inputs=[store.path], folder=fmt == "webdataset")  # never over the store itself
    if options.get("images_dir") is not None:
        check_output_path(options["images_dir"], inputs=[store.path], folder=True)
    if fmt != "webdataset":
        try:
            os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        except OSError as err:
            raise VLForgeError(f"cannot create the folder of {out!r}: {err.strerror or err}") from None
    unknown = sorted(selection.splits - set(store.counts()["splits"]))
    if unknown:
        raise VLForgeError(f"split {unknown[0]!r} has no images in the store {store.path!r} "
                           f"(splits: {', '.join(sorted(store.counts()['splits'])) or 'none'})")
    summary = ExportSummary(format=fmt, out=out)
    split = next(iter(selection.splits)) if len(selection.splits) == 1 else None
    counts = store.counts()
    total = counts["splits"].get(split, 0) if split is not None else counts["images"]
    records = track(store.iter_records(split=split), "export", total, "records")
    writer(store, select_records(records, selection, summary), out, summary, **options)
    return summary


def record_json(record: ImageRecord) -> dict[str, Any]:
    """image_id, split, width, height, image_path, image_bytes (the LENGTH of the embedded bytes, or null),
    captions [{text, source, kind, provenance, scores}], meta."""
    return {"image_id": record.image_id, "split": record.split, "width": record.width, "height": record.height,
            "image_path": record.image_path,
            "image_bytes": len(record.image_bytes) if record.image_bytes is not None else None,
            "captions": [c.to_dict() for c in record.captions], "meta": record.meta}
