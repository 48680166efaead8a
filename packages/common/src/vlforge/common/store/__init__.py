"""The LMDB caption store (DESIGN.md section 4): CaptionStore, CaptionDataset, counts and verification."""

from vlforge.common.store.counts import StoreCounts
from vlforge.common.store.dataset import CaptionDataset, collate_image_records
from vlforge.common.store.images import check_relative_path, decode_image, resolve_image_path
from vlforge.common.store.lmdb_store import CaptionStore, PutResult

__all__ = ["CaptionDataset", "CaptionStore", "PutResult", "StoreCounts", "check_relative_path",
           "collate_image_records", "decode_image", "resolve_image_path"]
