"""The checks every ingested record passes: caption validity, image path safety, image validity.

A failed check raises :class:`Rejection` with a reason from :data:`RECORD_REASONS` or :data:`CAPTION_REASONS`;
the ingest driver counts it by reason and logs it with the record's name. Nothing here touches the store."""

from __future__ import annotations

import io
import os

from PIL import Image, UnidentifiedImageError

from vlforge.common.errors import VLForgeError
from vlforge.common.store.images import read_regular_file, resolve_image_path

MAX_CAPTION_BYTES = 64 * 1024

# Why a whole record (one image) is skipped.
RECORD_REASONS = (
    "missing_image",      # no image file, or the record names no image (e.g. a failed download)
    "empty_image",        # a zero-byte image file
    "bad_image",          # truncated or undecodable image
    "path_outside_root",  # the image path is absolute or leaves the images root ('..', symlink)
    "no_caption",         # no usable caption is left after the caption checks
    "malformed_json",     # a JSON line (or a webdataset .json) that does not parse or is not an object
    "malformed_row",      # a TSV row without a caption and a URL column
    "malformed_entry",    # an entry of a JSON document without the fields its format requires
    "bad_id",             # an image id that is not a string or integer, not valid UTF-8, or too long
    "id_conflict",        # an image id already given (in the store or earlier in this input) to a different image
    "invalid_utf8_field", # an image path or meta string that is not valid UTF-8 (cannot be stored)
    "truncated_shard",    # the rest of a webdataset tar shard after a read error
    "failed_download",    # img2dataset could not download (or resize) the image: its status is not "success"
)
# Why one caption of a record is dropped (the record stays if another caption is usable).
CAPTION_REASONS = (
    "empty_caption",      # empty or whitespace-only
    "invalid_utf8",       # bytes that are not UTF-8 (or lone surrogates)
    "caption_too_long",   # over MAX_CAPTION_BYTES of UTF-8
    "not_text",           # not a string (a number, null, a list, ...)
)


class Rejection(Exception):
    """A record or caption that fails a check; ``reason`` is one of RECORD_REASONS or CAPTION_REASONS."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def decode_text(raw: bytes) -> str:
    """Decode UTF-8 keeping invalid bytes as lone surrogates, so :func:`check_caption` can reject them."""
    return raw.decode("utf-8", "surrogateescape")


def check_caption(text: object) -> str:
    """The caption stripped of surrounding whitespace, or a Rejection (not_text, invalid_utf8, empty, too
    long)."""
    if not isinstance(text, str):
        raise Rejection("not_text", f"caption is a {type(text).__name__}, not a string")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise Rejection("invalid_utf8", "caption is not valid UTF-8") from None
    if size > MAX_CAPTION_BYTES:
        raise Rejection("caption_too_long", f"caption has {size} bytes (limit {MAX_CAPTION_BYTES})")
    stripped = text.strip()
    if not stripped:
        raise Rejection("empty_caption", "caption is empty or whitespace only")
    return stripped


def safe_image_file(root: str | os.PathLike, path: object) -> str:
    """The real file of ``path`` under ``root``; a Rejection if it is absolute, leaves the root or is not a
    path."""
    if not isinstance(path, str) or not path:
        raise Rejection("missing_image", f"record names no image (got {path!r})")
    try:
        return resolve_image_path(root, path, "image")
    except VLForgeError as err:
        raise Rejection("path_outside_root", str(err).removeprefix("image: ")) from None


def read_image(full_path: str) -> bytes:
    """The encoded bytes of an image file; a Rejection if it is missing or unreadable."""
    try:
        return read_regular_file(full_path)
    except FileNotFoundError:
        raise Rejection("missing_image", f"image file {full_path!r} does not exist") from None
    except OSError as err:
        raise Rejection("missing_image",
                        f"image file {full_path!r} cannot be read: {err.strerror or err}") from None


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) of encoded image bytes after decoding them completely; a Rejection if empty or broken.

    JPEGs are decoded at reduced scale (``draft``), which still reads every byte, so truncation is caught
    cheaply.
    """
    if not data:
        raise Rejection("empty_image", "image file has zero bytes")
    try:
        with Image.open(io.BytesIO(data)) as img:
            size = img.size
            img.draft("RGB", (max(1, size[0] // 8), max(1, size[1] // 8)))
            img.load()
    except UnidentifiedImageError:
        raise Rejection("bad_image", "not a decodable image") from None
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as err:
        raise Rejection("bad_image", f"truncated or corrupt image ({err})") from None
    return size
