"""CSV / TSV export in open_clip's ``CsvDataset`` layout: one row per caption, columns ``filepath`` (the image
file, absolute) and ``title`` (the caption), plus ``image_id``, ``split``, ``source`` and ``kind``.

Train with ``--train-data out.tsv --csv-img-key filepath --csv-caption-key title`` (``--csv-separator ','`` for
the comma-separated variant). Images are written as stored to ``images_dir`` (default ``<out stem>_images``).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator

from vlforge.common.records import ImageRecord
from vlforge.common.store.export_images import image_bytes, write_image
from vlforge.common.store.export_select import ExportSummary
from vlforge.common.store.lmdb_store import CaptionStore
from vlforge.common.store.output import open_text_out

COLUMNS = ("filepath", "title", "image_id", "split", "source", "kind")


def export_csv(store: CaptionStore, records: Iterator[ImageRecord], out: str, summary: ExportSummary,
               images_dir: str | None = None, separator: str = ",") -> None:
    images_dir = os.path.abspath(images_dir or os.path.splitext(out)[0] + "_images")
    with open_text_out(out) as f:
        writer = csv.writer(f, delimiter=separator, lineterminator="\n")
        writer.writerow(COLUMNS)
        for record in records:
            path = os.path.join(images_dir, write_image(images_dir, record, image_bytes(store, record)))
            for caption in record.captions:
                writer.writerow((path, _one_line(caption.text), record.image_id, record.split, caption.source,
                                 caption.kind))
            summary.images += 1
            summary.captions += len(record.captions)


def _one_line(text: str) -> str:
    """pandas reads quoted newlines, but one caption per physical line keeps the file greppable and splittable."""
    return " ".join(text.split())
