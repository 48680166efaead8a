"""Parquet export (needs ``pyarrow``), the layout of LAION metadata and of Hugging Face ``datasets`` image
tables: one row per caption with ``image`` (struct ``{bytes, path}``, the ``datasets.Image`` feature's storage),
``text``, ``image_id``, ``split``, ``width``, ``height``, ``source`` and ``kind``. Images are the stored encoded
bytes (never re-encoded); rows are written in row groups of ``rows_per_group``.
"""

from __future__ import annotations

from collections.abc import Iterator

from vlforge.common.errors import VLForgeError
from vlforge.common.records import ImageRecord
from vlforge.common.store.export_images import image_bytes, image_file_name
from vlforge.common.store.export_select import ExportSummary
from vlforge.common.store.lmdb_store import CaptionStore


def export_parquet(store: CaptionStore, records: Iterator[ImageRecord], out: str, summary: ExportSummary,
                   rows_per_group: int = 1000) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise VLForgeError("the parquet export needs pyarrow: pip install 'vlforge-common[parquet]'") from None
    schema = pa.schema([("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
                        ("text", pa.string()), ("image_id", pa.string()), ("split", pa.string()),
                        ("width", pa.int32()), ("height", pa.int32()), ("source", pa.string()),
                        ("kind", pa.string())])
    rows: list[dict] = []
    try:
        writer = pq.ParquetWriter(out, schema)
    except OSError as err:
        raise VLForgeError(f"cannot write {out!r}: {err}") from None
    with writer:
        for record in records:
            data = image_bytes(store, record)
            image = {"bytes": data, "path": image_file_name(record, data)}
            for caption in record.captions:
                rows.append({"image": image, "text": caption.text, "image_id": record.image_id,
                             "split": record.split, "width": record.width, "height": record.height,
                             "source": caption.source, "kind": caption.kind})
            if len(rows) >= rows_per_group:
                writer.write_table(pa.Table.from_pylist(rows, schema=schema))
                rows = []
            summary.images += 1
            summary.captions += len(record.captions)
        if rows:
            writer.write_table(pa.Table.from_pylist(rows, schema=schema))
