"""Image access for the store: resolve a record's relative path safely under its root, and decode bytes to RGB."""

from __future__ import annotations

import errno
import io
import os
import stat
from typing import BinaryIO

from PIL import Image, UnidentifiedImageError

from vlforge.common.errors import VLForgeError


def check_relative_path(path: str, what: str) -> None:
    """Reject a path that is empty, absolute or has a '..' component (it would leave the images root)."""
    if not path or os.path.isabs(path) or path.startswith(("/", "\\")) or "\x00" in path:
        raise VLForgeError(f"{what}: image path {path!r} must be a non-empty relative path")
    parts = path.replace("\\", "/").split("/")
    if ".." in parts:
        raise VLForgeError(f"{what}: image path {path!r} leaves the images root ('..')")


def resolve_image_path(root: str | os.PathLike, path: str, what: str) -> str:
    """The real file for ``path`` under ``root``; VLForgeError if it escapes the root (also through symlinks)."""
    check_relative_path(path, what)
    real_root = os.path.realpath(root)
    full = os.path.realpath(os.path.join(real_root, path))
    if os.path.commonpath([real_root, full]) != real_root:
        raise VLForgeError(f"{what}: image path {path!r} resolves outside the images root {str(root)!r}")
    return full


def open_regular_file(path: str | os.PathLike) -> BinaryIO:
    """A binary file object for a regular file (see ``read_regular_file``); the caller closes it."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, "is a directory", os.fspath(path))
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, "not a regular file", os.fspath(path))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb", closefd=True)
    except BaseException:
        os.close(fd)
        raise


def read_regular_file(path: str | os.PathLike) -> bytes:
    """The bytes of a regular file. Opened non-blocking and checked with fstat first, so a FIFO, a device or a socket
    named where a file is expected is an OSError (EINVAL), never a read that blocks forever."""
    with open_regular_file(path) as f:
        return f.read()


def read_image_file(full_path: str, what: str) -> bytes:
    try:
        return read_regular_file(full_path)
    except FileNotFoundError:
        raise VLForgeError(f"{what}: image file {full_path!r} is missing") from None
    except OSError as err:
        raise VLForgeError(f"{what}: image file {full_path!r} cannot be read: {err.strerror or err}") from None


def decode_image(data: bytes, what: str) -> Image.Image:
    """Fully decode encoded image bytes to an RGB PIL image; zero-byte, truncated or undecodable data is an error."""
    if not data:
        raise VLForgeError(f"{what}: image is zero bytes")
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return img.convert("RGB")
    except UnidentifiedImageError:
        raise VLForgeError(f"{what}: image is not a decodable image file") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise VLForgeError(f"{what}: image is truncated or corrupt ({err})") from None
