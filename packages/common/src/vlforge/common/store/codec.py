"""The on-disk layout of a caption store: LMDB keys and the msgpack / JSON encodings of their values.

Keys (one LMDB database, byte-sorted, so every scan is deterministic):

- ``meta/info``   JSON object: store-level metadata, always holding ``schema_version``.
- ``meta/counts`` JSON object: images, captions, splits, by_source, by_kind; updated in every write transaction.
- ``rec/<id>``    msgpack map: one :class:`~vlforge.common.records.ImageRecord` (``to_dict`` form).
- ``split/<split>\\x00<ordinal>`` the image id (UTF-8) of the ordinal-th image added to that split; ordinals are
  dense big-endian uint64, so a dataset over a split is indexed without scanning the store.

No pickle: records are msgpack (binary-safe for embedded image bytes), metadata is JSON.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import msgpack

from vlforge.common.errors import VLForgeError
from vlforge.common.records import ImageRecord

SCHEMA_VERSION = 1
INFO_KEY = b"meta/info"
COUNTS_KEY = b"meta/counts"
RECORD_PREFIX = b"rec/"
SPLIT_PREFIX = b"split/"
MAX_ID_BYTES = 400  # LMDB keys are at most 511 bytes; leave room for the prefixes.
_ORDINAL = struct.Struct(">Q")


def record_key(image_id: str) -> bytes:
    raw = image_id.encode("utf-8")
    if not raw or len(raw) > MAX_ID_BYTES:
        raise VLForgeError(f"image id {image_id[:60]!r} must be 1..{MAX_ID_BYTES} bytes of UTF-8")
    return RECORD_PREFIX + raw


def split_prefix(split: str) -> bytes:
    raw = split.encode("utf-8")
    if not raw or b"\x00" in raw or len(raw) > 64:
        raise VLForgeError(f"split name {split!r} must be 1..64 bytes without NUL")
    return SPLIT_PREFIX + raw + b"\x00"


def split_key(split: str, ordinal: int) -> bytes:
    return split_prefix(split) + _ORDINAL.pack(ordinal)


def ordinal_of(key: bytes) -> int:
    return _ORDINAL.unpack(key[-_ORDINAL.size:])[0]


def encode_record(record: ImageRecord) -> bytes:
    return msgpack.packb(record.to_dict(), use_bin_type=True)


def decode_record(raw: bytes, key: bytes | str) -> ImageRecord:
    """Decode a stored record; any damage is a VLForgeError naming the key."""
    try:
        return ImageRecord.from_dict(msgpack.unpackb(raw, raw=False))
    except VLForgeError as err:
        raise VLForgeError(f"record {_show(key)}: {err}") from None
    except (ValueError, TypeError, KeyError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as err:
        raise VLForgeError(f"record {_show(key)} does not decode: {type(err).__name__}: {err}") from None


def encode_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False).encode("utf-8")


def decode_json(raw: bytes, key: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise VLForgeError(f"store key {_show(key)} is not valid JSON: {err}") from None


def _show(key: bytes | str) -> str:
    if isinstance(key, bytes):
        key = key.removeprefix(RECORD_PREFIX).decode("utf-8", "replace")
    return repr(key)
