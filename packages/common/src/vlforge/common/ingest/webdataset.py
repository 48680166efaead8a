"""WebDataset tar shards: the files of one sample are adjacent members ``<key>.<ext>``, an image (jpg, jpeg,
png, webp) with ``<key>.txt`` (the caption) or ``<key>.json`` (its ``caption`` field), as img2dataset writes
them. --annotations is one shard, a glob ("shards/*.tar") or brace notation ("shards/{00000..00099}.tar");
images are always stored embedded (the tar holds no files to point at).

Image id: the sample key, i.e. the member name up to the first dot of its base name ("000000042" or
"part1/000000042"). A shard that ends early (truncated) keeps the samples completed before the damage, loses
the one in progress and counts one truncated_shard; a file that is not a tar archive is an error naming it."""

from __future__ import annotations

import json
import os
import stat
import tarfile
from collections.abc import Callable, Iterator
from pathlib import Path

from vlforge.common.errors import VLForgeError
from vlforge.common.ingest.checks import decode_text
from vlforge.common.ingest.files import expand_paths
from vlforge.common.ingest.items import Skipped, SourceItem

IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
_COMPRESSED_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ")


def split_member_name(name: str) -> tuple[str, str]:
    """(key, extension) of a member: "a/b/000042.seg.png" -> ("a/b/000042", "seg.png")."""
    head, _, base = name.rpartition("/")
    stem, _, ext = base.partition(".")
    return (f"{head}/{stem}" if head else stem), ext.lower()


def read_webdataset(annotations: str, images: Path | None) -> Iterator[SourceItem | Skipped]:
    for shard in expand_paths(annotations):
        yield from read_shard(shard)


SampleBuilder = Callable[[str, dict[str, bytes], str], "SourceItem | Skipped"]


def read_shard(shard: str, build: SampleBuilder | None = None) -> Iterator[SourceItem | Skipped]:
    """The samples of one shard, each made by ``build(key, {extension: bytes}, shard file name)``."""
    build = build or _sample
    shard_name = Path(shard).name
    try:
        if not stat.S_ISREG(os.stat(shard).st_mode):  # a FIFO or a device would block the read
            raise VLForgeError(f"annotation file {shard!r} is not a regular file")
        archive = tarfile.open(shard, mode="r|*")
    except (tarfile.TarError, OSError) as err:
        raise VLForgeError(f"annotation file {shard!r} is not a readable tar shard: {err}") from None
    key, files, damage = None, {}, None
    try:
        with archive:
            for member in archive:
                if not member.isfile():
                    continue
                member_key, ext = split_member_name(member.name)
                if member_key != key and key is not None:
                    yield build(key, files, shard_name)
                    files = {}
                key = member_key
                files[ext] = archive.extractfile(member).read()
            if _end_marker_missing(shard, archive.offset):
                damage = "the file ends before the tar end-of-archive marker"
    except (tarfile.TarError, OSError, EOFError) as err:
        damage = str(err)
    if damage:
        yield Skipped(f"shard {shard_name}", "truncated_shard", f"samples from {key!r} on are lost: {damage}")
    elif key is not None:
        yield build(key, files, shard_name)


def _end_marker_missing(shard: str, offset: int) -> bool:
    """For an uncompressed tar: whether the file is too short to hold the two zero blocks that end every tar
    (tarfile stops silently at a cut header; compressed shards report cuts as read errors instead)."""
    with open(shard, "rb") as f:
        if f.read(6).startswith(_COMPRESSED_MAGIC):
            return False
    return os.path.getsize(shard) < offset + 2 * tarfile.BLOCKSIZE


def _sample(key: str, files: dict[str, bytes], shard_name: str) -> SourceItem | Skipped:
    name = f"sample {key} of {shard_name}"
    image = next((files[ext] for ext in IMAGE_EXTENSIONS if ext in files), None)
    if image is None:
        members = ", ".join(sorted(files)) or "nothing"
        return Skipped(name, "missing_image", f"no image member (has {members})")
    if "txt" in files:
        captions: list[object] = [decode_text(files["txt"])]
    elif "json" in files:
        try:
            obj = json.loads(decode_text(files["json"]))
        except json.JSONDecodeError as err:
            return Skipped(name, "malformed_json", f"{key}.json is not JSON ({err.msg})")
        if not isinstance(obj, dict):
            return Skipped(name, "malformed_json", f"{key}.json is not a JSON object")
        captions = [obj["caption"]] if "caption" in obj else []
    else:
        captions = []
    return SourceItem(image_id=key, name=name, captions=captions, image_bytes=image)
