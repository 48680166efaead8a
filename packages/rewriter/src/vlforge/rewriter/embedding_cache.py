"""Image features of a store split, computed once with the frozen retriever and cached beside the store.

The cache lives in ``<store>.rewriter_cache/`` next to the store folder, one safetensors file per split (features
plus the image ids in its metadata; no pickle). Its key hashes the store's data file (size, modification time),
the checkpoint's files (relative path, size, modification time), the split, the image size and the image limit:
a rewritten store or a retrained checkpoint gives a new key, and the stale file of that split is replaced.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from vlforge.common.errors import VLForgeError
from vlforge.rewriter.retriever import ImageIndex

STORE_DATA_FILE = "data.mdb"


def _file_stamps(path: Path) -> list[tuple[str, int, int]]:
    if path.is_file():
        stat = path.stat()
        return [(path.name, stat.st_size, stat.st_mtime_ns)]
    if path.is_dir():
        stamps = []
        for root, _, files in os.walk(path):
            for name in sorted(files):
                file = Path(root) / name
                stat = file.stat()
                stamps.append((str(file.relative_to(path)), stat.st_size, stat.st_mtime_ns))
        return sorted(stamps)
    raise VLForgeError(f"{path}: no such file or folder")


def cache_key(store: str | os.PathLike, checkpoint: str | os.PathLike, split: str, image_size: int,
              max_images: int | None = None) -> str:
    """A hex digest that changes whenever the store's data, the checkpoint's files or the settings change."""
    store_data = Path(store) / STORE_DATA_FILE
    if not store_data.is_file():
        raise VLForgeError(f"store {store}: no {STORE_DATA_FILE} (not a caption store)")
    description = {"store": _file_stamps(store_data), "checkpoint": _file_stamps(Path(checkpoint)),
                   "split": split, "image_size": image_size, "max_images": max_images}
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()


def cache_dir(store: str | os.PathLike) -> Path:
    store = Path(store).resolve()
    return store.parent / f"{store.name}.rewriter_cache"


def _encode(model: nn.Module, store: str | os.PathLike, split: str, image_size: int, batch_size: int,
            max_images: int | None) -> ImageIndex:
    from vlforge.vlm.evaluation import encode_split

    encoding = encode_split(model, store, split, image_size, batch_size, max_images)
    if not encoding.image_ids:
        raise VLForgeError(f"store {store}: split {split!r} has no images")
    return ImageIndex(list(encoding.image_ids), encoding.image_features.float().contiguous())


def cached_image_index(model: nn.Module, store: str | os.PathLike, split: str, checkpoint: str | os.PathLike,
                       image_size: int, batch_size: int = 256,
                       max_images: int | None = None) -> tuple[ImageIndex, bool]:
    """The split's image features from the cache, or computed with ``model`` (the retriever loaded from
    ``checkpoint``) and cached. Returns ``(index, from_cache)``."""
    key = cache_key(store, checkpoint, split, image_size, max_images)
    folder = cache_dir(store)
    path = folder / f"{split}-{key[:20]}.safetensors"
    if path.is_file():
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            if metadata.get("key") == key:
                return ImageIndex(json.loads(metadata["image_ids"]), handle.get_tensor("features")), True
    index = _encode(model, store, split, image_size, batch_size, max_images)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob(f"{split}-*.safetensors"):
        stale.unlink()
    partial = path.with_suffix(".partial")
    save_file({"features": index.features}, str(partial),
              metadata={"key": key, "split": split, "image_ids": json.dumps(index.image_ids)})
    partial.replace(path)
    return index, False
