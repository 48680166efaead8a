"""The on-disk layout of a caption store: LMDB keys and the msgpack / JSON encodings of their values.

Keys (one LMDB database, byte-sorted, so every scan is deterministic):

- ``meta/info``   JSON object: store-level metadata, always holding ``schema_version``.
- ``meta/counts`` JSON object: images, captions, splits, by_source, by_kind; updated in every write transaction.
- ``meta/writers`` JSON integer: how many writer sessions (store objects opened for writing) have written.
- ``meta/removed`` present only in a store its creator removed (see ``CaptionStore.remove_if_unused``): every later
  write transaction refuses, so a writer that still had it open fails loudly instead of writing into a deleted file.
- ``rec/<id>``    msgpack array: one :class:`~vlforge.common.records.ImageRecord` as RECORD_FIELDS, its captions
  as arrays of CAPTION_FIELDS (arrays, not maps: no key strings to store or decode, ~3x faster to read).
- ``split/<split>\\x00<ordinal>`` the image id (UTF-8) of the ordinal-th image added to that split; ordinals are
  dense big-endian uint64, so a dataset over a split is indexed without scanning the store.

No pickle: records are msgpack (binary-safe for embedded image bytes), metadata is JSON.
"""

from __future__ import annotations

import dataclasses
import json
import struct
from typing import Any

import msgpack

from vlforge.common.errors import VLForgeError
from vlforge.common.records import Caption, ImageRecord

SCHEMA_VERSION = 1
INFO_KEY = b"meta/info"
COUNTS_KEY = b"meta/counts"
REMOVED_KEY = b"meta/removed"
WRITERS_KEY = b"meta/writers"
RECORD_PREFIX = b"rec/"
SPLIT_PREFIX = b"split/"
RECORD_FIELDS = ("image_id", "split", "width", "height", "captions", "image_path", "image_bytes", "meta")
CAPTION_FIELDS = ("text", "source", "kind", "provenance", "scores")
_N_FIELDS = len(RECORD_FIELDS)
if (tuple(f.name for f in dataclasses.fields(ImageRecord)) != RECORD_FIELDS
        or tuple(f.name for f in dataclasses.fields(Caption)) != CAPTION_FIELDS):
    raise ImportError("vlforge.common.records changed its field order; update the store codec and schema_version")
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
    captions = [[c.text, c.source, c.kind, c.provenance, c.scores] for c in record.captions]
    return msgpack.packb([record.image_id, record.split, record.width, record.height, captions, record.image_path,
                          record.image_bytes, record.meta], use_bin_type=True)


def decode_record(raw: bytes, key: bytes | str, meta: bool = True) -> ImageRecord:
    """Decode a stored record; any damage (bad msgpack, wrong shape, invalid kind) is a VLForgeError naming it.

    The hot path of every read: positional construction (the field order is checked at import). ``meta=False``
    skips the ``meta`` field unread (ShapesWorld's scene graph, QA pairs and facts: over half the decode time) and
    leaves ``record.meta`` None, for readers that need only the image and captions; such a record cannot be
    written back (``put_records`` refuses a meta that is not a dict).
    """
    try:
        fields = msgpack.unpackb(raw, raw=False) if meta else _fields_without_meta(raw)
        if type(fields) is not list or len(fields) != _N_FIELDS:
            raise ValueError(f"expected an array of the {_N_FIELDS} fields {RECORD_FIELDS}")
        fields[4] = [Caption(*_caption_fields(c)) for c in fields[4]]
        return ImageRecord(*fields)
    except VLForgeError as err:
        raise VLForgeError(f"record {_show(key)}: {err}") from None
    except (ValueError, TypeError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError,
            msgpack.OutOfData) as err:
        raise VLForgeError(f"record {_show(key)} does not decode: {type(err).__name__}: {err}") from None


def _fields_without_meta(raw: bytes) -> list:
    """The record array's fields with the last one (meta) skipped, not unpacked: None in its place."""
    unpacker = msgpack.Unpacker(raw=False, max_buffer_size=0)  # 0: no limit below the record's own size
    unpacker.feed(raw)
    if unpacker.read_array_header() != _N_FIELDS:
        raise ValueError(f"expected an array of the {_N_FIELDS} fields {RECORD_FIELDS}")
    fields = [unpacker.unpack() for _ in range(_N_FIELDS - 1)]
    unpacker.skip()
    return [*fields, None]


def _caption_fields(fields: list) -> list:
    if type(fields) is not list or len(fields) != len(CAPTION_FIELDS):
        raise ValueError(f"every caption must be an array of the fields {CAPTION_FIELDS}")
    return fields


def encode_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False).encode("utf-8")


def decode_json(raw: bytes | None, key: bytes) -> Any:
    if raw is None:
        raise VLForgeError(f"store key {_show(key)} is missing (a damaged store; run `vlforge-store verify`)")
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise VLForgeError(f"store key {_show(key)} is not valid JSON: {err}") from None


def _show(key: bytes | str) -> str:
    if isinstance(key, bytes):
        key = key.removeprefix(RECORD_PREFIX).decode("utf-8", "replace")
    return repr(key)
