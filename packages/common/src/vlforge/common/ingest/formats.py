"""The ingest formats: each one's reader and defaults (caption source, split, where images live)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from vlforge.common.ingest.cc3m import read_cc3m
from vlforge.common.ingest.coco import read_coco
from vlforge.common.ingest.img2dataset import read_img2dataset
from vlforge.common.ingest.items import Skipped, SourceItem
from vlforge.common.ingest.jsonl import read_jsonl
from vlforge.common.ingest.karpathy import read_karpathy
from vlforge.common.ingest.llava import read_llava
from vlforge.common.ingest.webdataset import read_webdataset

Reader = Callable[[str, Path | None], Iterator[SourceItem | Skipped]]


@dataclass(frozen=True)
class IngestFormat:
    """name; read(annotations, images_root); default caption source; whether --images defaults to the
    annotation file's folder (else it is required); whether images are always embedded (webdataset: the tar
    holds no files to point at)."""

    name: str
    read: Reader
    default_source: str
    images_default_to_annotations_dir: bool = False
    always_embedded: bool = False


FORMATS: dict[str, IngestFormat] = {f.name: f for f in (
    IngestFormat("coco", read_coco, "gt"),
    IngestFormat("karpathy", read_karpathy, "gt"),
    IngestFormat("cc3m", read_cc3m, "alt_text"),
    IngestFormat("llava", read_llava, "gt", images_default_to_annotations_dir=True),
    IngestFormat("jsonl", read_jsonl, "gt", images_default_to_annotations_dir=True),
    IngestFormat("webdataset", read_webdataset, "alt_text", always_embedded=True),
    IngestFormat("img2dataset", read_img2dataset, "alt_text", images_default_to_annotations_dir=True),
)}
DEFAULT_SPLIT = "train"
