"""The LMDB caption store (DESIGN.md section 4): CaptionStore, CaptionDataset, counts and verification.

CaptionDataset (which needs torch) is imported on first use, so store tools start without loading torch.
"""

from vlforge.common.store.counts import StoreCounts
from vlforge.common.store.images import check_relative_path, decode_image, resolve_image_path
from vlforge.common.store.lmdb_store import CaptionStore, PutResult

__all__ = ["CaptionDataset", "CaptionStore", "PutResult", "StoreCounts", "check_relative_path",
           "collate_image_records", "decode_image", "resolve_image_path"]


def __getattr__(name: str):
    if name in ("CaptionDataset", "collate_image_records"):
        from vlforge.common.store import dataset

        return getattr(dataset, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
