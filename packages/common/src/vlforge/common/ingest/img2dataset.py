"""img2dataset output folders, in its ``files`` layout (``00000/000000123.jpg`` + ``.txt`` + ``.json`` per sample)
or its ``webdataset`` layout (``00000.tar`` holding the same members), with per-shard ``00000.parquet`` (every
sample with its status) and ``00000_stats.json`` beside them.

--annotations is the output folder (no input table: each caption comes from the sample's ``.txt``, else its
JSON's ``caption``), or the input table (a TSV / CSV with a header naming ``caption`` and ``url`` columns, or a
parquet file, needing pyarrow) with --images the output folder (captions from the table).

Keys are img2dataset's own (``compute_key``): the row's shard id times 10**ceil(log10(number_sample_per_shard)),
plus its index in the shard, zero-padded to the shard-name digits plus those digits; so a 5000-per-shard
download keys row 5000 as ``"000010000"``, not ``"000005000"`` (:class:`KeyScheme`, also used by the cc3m reader).

Each record's meta["img2dataset"] holds the sample's JSON (url, width / height, original_width /
original_height, status, sha256, ...). Samples whose status is not "success" (from the parquet files, or only
counted by ``_stats.json`` when pyarrow is absent) are skipped as failed_download.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from vlforge.common.errors import VLForgeError
from vlforge.common.ingest.checks import decode_text
from vlforge.common.ingest.items import Skipped, SourceItem
from vlforge.common.ingest.webdataset import read_shard, split_member_name
from vlforge.common.store.images import open_regular_file, read_regular_file

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
_SHARD = re.compile(r"^(\d+)(\.tar)?$")


def compute_key(row_in_shard: int, shard_id: int, digits_per_shard: int, shard_digits: int) -> str:
    """img2dataset's sample key."""
    return f"{10 ** digits_per_shard * shard_id + row_in_shard:0{digits_per_shard + shard_digits}d}"


@dataclass(frozen=True)
class KeyScheme:
    """How img2dataset keyed the rows of its input: ``per_shard`` rows a shard, shard names of ``shard_digits``."""

    per_shard: int
    shard_digits: int

    def key(self, row: int) -> str:
        digits = math.ceil(math.log10(self.per_shard))
        return compute_key(row % self.per_shard, row // self.per_shard, digits, self.shard_digits)


def key_scheme(folder: Path) -> KeyScheme:
    """The key scheme of an img2dataset output folder: number_sample_per_shard from the largest shard's parquet
    row count or ``_stats.json`` count; without either, from the key length (key digits minus shard-name digits,
    i.e. a power-of-ten number_sample_per_shard)."""
    shards = _shards(folder)
    sizes = _shard_sizes(folder, [name for name, _ in shards])
    if sizes:
        return KeyScheme(max(sizes), len(shards[0][0]))
    for name, path in shards:
        stems = ([e.name.partition(".")[0] for e in os.scandir(path)] if path.is_dir()
                 else [split_member_name(n)[0] for n in _tar_names(path)])
        stem = next((s for s in stems if s.isdigit()), None)
        if stem is not None:
            return KeyScheme(10 ** max(0, len(stem) - len(name)), len(name))
    raise VLForgeError(f"img2dataset folder {str(folder)!r} holds no sample to read its key scheme from")


def _tar_names(path: Path) -> list[str]:
    with tarfile.open(path, "r|*") as archive:
        for member in archive:
            if member.isfile():
                return [member.name]
    return []


def _shard_sizes(folder: Path, shards: list[str]) -> list[int]:
    sizes = []
    for shard in shards:
        parquet, stats = folder / f"{shard}.parquet", folder / f"{shard}_stats.json"
        if parquet.is_file() and _parquet() is not None:
            with _open_file(parquet, "shard status file") as f:
                sizes.append(_parquet().ParquetFile(f).metadata.num_rows)
        elif stats.is_file():
            sizes.append(int(_stats(stats).get("count", 0)))
    return sizes


def _open_file(path: str | Path, what: str) -> BinaryIO:
    """``path`` opened as a regular file (a FIFO or a device is an error, never a read that blocks)."""
    try:
        return open_regular_file(path)
    except OSError as err:
        raise VLForgeError(f"{what} {str(path)!r} cannot be read: {err.strerror or err}") from None


def _stats(path: Path) -> dict:
    with _open_file(path, "shard stats file") as f:
        try:
            stats = json.loads(decode_text(f.read()))
        except json.JSONDecodeError as err:
            raise VLForgeError(f"shard stats file {str(path)!r} is not JSON ({err.msg})") from None
    if not isinstance(stats, dict):
        raise VLForgeError(f"shard stats file {str(path)!r} is not a JSON object")
    return stats


def _parquet():
    try:
        import pyarrow.parquet as pq
    except ImportError:
        return None
    return pq


def read_img2dataset(annotations: str, images: Path | None) -> Iterator[SourceItem | Skipped]:
    if Path(annotations).is_dir():
        folder, table = Path(annotations), None
    else:
        if images is None:
            raise VLForgeError("format img2dataset with an input table needs --images (the img2dataset output "
                               "folder); or pass the output folder as --annotations")
        folder, table = images, annotations
    shards = _shards(folder)
    statuses = _statuses(folder, [name for name, _ in shards])
    captions = _table_captions(table, folder) if table else None
    seen: set[str] = set()
    for name, path in shards:
        samples = _files_shard(folder, name) if path.is_dir() else read_shard(str(path), _sample)
        for item in samples:
            if isinstance(item, SourceItem):
                seen.add(item.image_id)
                if captions is not None:
                    item.captions = [captions[item.image_id][0]] if item.image_id in captions else []
                    item.meta["img2dataset"].setdefault("url", captions.get(item.image_id, ("", ""))[1])
            yield item
    failed = statuses["failed"]
    for key, error in failed.items():
        yield Skipped(f"sample {key} of {folder.name}", "failed_download", error or "not downloaded")
    for shard, count in statuses["failed_counts"].items():
        for _ in range(count):
            yield Skipped(f"shard {shard} of {folder.name}", "failed_download", "counted in its _stats.json")
    if captions is not None:
        for key in sorted(captions.keys() - seen - failed.keys()):
            yield Skipped(f"row with key {key} of {Path(table).name}", "failed_download", "no image was written")


def _shards(folder: Path) -> list[tuple[str, Path]]:
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as err:
        raise VLForgeError(f"img2dataset folder {str(folder)!r} cannot be read: {err.strerror or err}") from None
    shards = [(m.group(1), Path(e.path)) for e in entries if (m := _SHARD.match(e.name))
              and (e.is_dir() if m.group(2) is None else e.is_file())]
    if not shards:
        raise VLForgeError(f"{str(folder)!r} is not an img2dataset output folder (no 00000/ folder or 00000.tar)")
    return shards


def _files_shard(folder: Path, shard: str) -> Iterator[SourceItem | Skipped]:
    by_key: dict[str, dict[str, str]] = {}
    for entry in sorted(os.scandir(folder / shard), key=lambda e: e.name):
        stem, _, ext = entry.name.partition(".")
        if stem.isdigit():
            by_key.setdefault(stem, {})[ext.lower()] = entry.path
    for key, files in by_key.items():
        try:
            raw = {ext: read_regular_file(path) for ext, path in files.items() if ext in ("txt", "json")}
        except OSError as err:
            yield Skipped(f"sample {key} of shard {shard}", "malformed_entry",
                          f"a sidecar file cannot be read: {err.strerror or err}")
            continue
        yield _sample(key, raw, shard, image_path=next((f"{shard}/{key}.{ext}" for ext in IMAGE_EXTENSIONS
                                                        if ext in files), None))


def _sample(key: str, files: dict[str, bytes], shard: str, image_path: str | None = None) -> SourceItem | Skipped:
    name = f"sample {key} of shard {shard}"
    meta: dict = {}
    if "json" in files:
        try:
            meta = json.loads(decode_text(files["json"]))
        except json.JSONDecodeError as err:
            return Skipped(name, "malformed_json", f"{key}.json is not JSON ({err.msg})")
        if not isinstance(meta, dict):
            return Skipped(name, "malformed_json", f"{key}.json is not a JSON object")
    if meta.get("status", "success") != "success":
        return Skipped(name, "failed_download", str(meta.get("error_message") or meta["status"]))
    image = next((files[ext] for ext in IMAGE_EXTENSIONS if ext in files), None)
    if image is None and image_path is None:
        return Skipped(name, "missing_image", "no image file for this sample")
    if "txt" in files:
        captions: list[object] = [decode_text(files["txt"])]
    else:
        captions = [meta["caption"]] if meta.get("caption") is not None else []
    return SourceItem(image_id=key, name=name, captions=captions, image_path=image_path, image_bytes=image,
                      meta={"img2dataset": meta})


def _statuses(folder: Path, shards: list[str]) -> dict:
    """failed {key: error} from the per-shard parquet files (pyarrow), else failed_counts {shard: n} from the
    _stats.json files."""
    failed: dict[str, str] = {}
    failed_counts: dict[str, int] = {}
    pq = _parquet()
    for shard in shards:
        parquet, stats = folder / f"{shard}.parquet", folder / f"{shard}_stats.json"
        if pq is not None and parquet.is_file():
            with _open_file(parquet, "shard status file") as f:
                rows = pq.read_table(f, columns=["key", "status", "error_message"]).to_pylist()
            for row in rows:
                if row["status"] != "success":
                    failed[str(row["key"])] = str(row["error_message"] or row["status"])
        elif stats.is_file():
            counts = _stats(stats)
            failed_counts[shard] = int(counts.get("failed_to_download", 0)) + int(counts.get("failed_to_resize", 0))
    return {"failed": failed, "failed_counts": failed_counts}


def _table_captions(table: str, folder: Path) -> dict[str, tuple[str, str]]:
    """{img2dataset key: (caption, url)} of every row of the input table."""
    scheme = key_scheme(folder)
    return {scheme.key(n): row for n, row in enumerate(_table_rows(table))}


def _table_rows(table: str) -> list[tuple[str, str]]:
    if table.endswith(".parquet"):
        pq = _parquet()
        if pq is None:
            raise VLForgeError("reading a parquet input table needs pyarrow: pip install 'vlforge-common[parquet]'")
        with _open_file(table, "input table") as f:
            data = pq.read_table(f).to_pydict()
        if "caption" not in data or "url" not in data:
            raise VLForgeError(f"input table {table!r} has no 'caption' and 'url' columns")
        return list(zip(data["caption"], data["url"], strict=True))
    try:
        with io.TextIOWrapper(_open_file(table, "input table"), encoding="utf-8", newline="") as f:
            delimiter = "\t" if table.endswith((".tsv", ".txt")) else ","
            reader = csv.DictReader(f, delimiter=delimiter)
            if not reader.fieldnames or "caption" not in reader.fieldnames or "url" not in reader.fieldnames:
                raise VLForgeError(f"input table {table!r} needs a header naming 'caption' and 'url' columns")
            return [(row["caption"], row["url"]) for row in reader]
    except OSError as err:
        raise VLForgeError(f"input table {table!r} cannot be read: {err.strerror or err}") from None
