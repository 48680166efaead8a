"""The shared ingest checks: captions, image bytes, image paths."""

from __future__ import annotations

import io
import os
import random

import pytest
from PIL import Image

from vlforge.common.ingest.checks import (
    MAX_CAPTION_BYTES,
    Rejection,
    check_caption,
    decode_text,
    image_size,
    read_image,
    safe_image_file,
)


def encoded(fmt: str, size=(40, 30)) -> bytes:
    """A real (seeded) noise image: enough entropy that cutting its tail removes pixel data."""
    img = Image.frombytes("RGB", size, random.Random(0).randbytes(size[0] * size[1] * 3))
    buf = io.BytesIO()
    img.save(buf, fmt)
    return buf.getvalue()


def reason_of(fn, *args) -> str:
    with pytest.raises(Rejection) as info:
        fn(*args)
    return info.value.reason


def test_caption_is_stripped():
    assert check_caption("  a red circle \n") == "a red circle"


@pytest.mark.parametrize("text", ["", "   ", "\t\n \r"])
def test_empty_or_whitespace_caption(text):
    assert reason_of(check_caption, text) == "empty_caption"


def test_invalid_utf8_caption_from_bytes():
    assert reason_of(check_caption, decode_text(b"caf\xe9 au lait")) == "invalid_utf8"
    assert check_caption(decode_text("café".encode())) == "café"


def test_caption_size_limit_is_64_kib_of_utf8():
    assert check_caption("a" * MAX_CAPTION_BYTES) == "a" * MAX_CAPTION_BYTES
    assert reason_of(check_caption, "a" * (MAX_CAPTION_BYTES + 1)) == "caption_too_long"
    # 2-byte characters: half as many characters reach the byte limit
    assert reason_of(check_caption, "é" * (MAX_CAPTION_BYTES // 2 + 1)) == "caption_too_long"


@pytest.mark.parametrize("value", [None, 7, ["a"], {"text": "a"}])
def test_non_string_caption(value):
    assert reason_of(check_caption, value) == "not_text"


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_image_size_of_valid_image(fmt):
    assert image_size(encoded(fmt, (40, 30))) == (40, 30)


def test_zero_byte_image():
    assert reason_of(image_size, b"") == "empty_image"


@pytest.mark.parametrize("fmt, tail", [("PNG", 40), ("JPEG", 10)])
def test_truncated_image(fmt, tail):
    """Cut into the pixel data (PNG: past IEND, CRC and zlib checksum, 20 bytes; a JPEG cut only at its 2-byte
    end marker can still hold every pixel and may decode)."""
    data = encoded(fmt)
    for cut in (len(data) - tail, len(data) // 2):
        assert reason_of(image_size, data[:cut]) == "bad_image"


def test_undecodable_image():
    assert reason_of(image_size, b"this is not an image at all") == "bad_image"


def test_safe_image_file(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.png").write_bytes(encoded("PNG"))
    assert safe_image_file(tmp_path, "sub/a.png") == os.path.realpath(tmp_path / "sub" / "a.png")


@pytest.mark.parametrize("path", ["../outside.png", "sub/../../outside.png", "/etc/passwd", "a\x00b"])
def test_paths_leaving_the_root_are_rejected(tmp_path, path):
    assert reason_of(safe_image_file, tmp_path, path) == "path_outside_root"


def test_symlink_leaving_the_root_is_rejected(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside.png"
    root.mkdir()
    outside.write_bytes(encoded("PNG"))
    (root / "link.png").symlink_to(outside)
    assert reason_of(safe_image_file, root, "link.png") == "path_outside_root"


def test_missing_image_file(tmp_path):
    assert reason_of(read_image, str(tmp_path / "nope.jpg")) == "missing_image"
    assert reason_of(safe_image_file, tmp_path, None) == "missing_image"
