"""Reading annotation files: whole JSON documents, JSON lines and TSV rows, with one-line errors naming the
file."""

from __future__ import annotations

import glob
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vlforge.common.errors import VLForgeError
from vlforge.common.ingest.checks import decode_text
from vlforge.common.store.images import open_regular_file, read_regular_file


def read_bytes(path: str | Path) -> bytes:
    try:
        return read_regular_file(path)
    except IsADirectoryError:
        raise VLForgeError(f"annotation file {str(path)!r} is a directory") from None
    except OSError as err:
        raise VLForgeError(f"annotation file {str(path)!r} cannot be read: {err.strerror or err}") from None


def load_json(path: str | Path) -> Any:
    """The parsed JSON document; invalid UTF-8 in strings stays as lone surrogates (rejected per caption)."""
    text = decode_text(read_bytes(path)).removeprefix("\ufeff")
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise VLForgeError(f"annotation file {str(path)!r} is not valid JSON "
                           f"(line {err.lineno}, column {err.colno}: {err.msg})") from None


def iter_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, text without its line ending) for each line of a text file."""
    try:
        f = open_regular_file(path)
        with f:
            for number, raw in enumerate(f, start=1):
                yield number, decode_text(raw.rstrip(b"\r\n")).removeprefix("\ufeff" if number == 1 else "")
    except IsADirectoryError:
        raise VLForgeError(f"annotation file {str(path)!r} is a directory") from None
    except OSError as err:
        raise VLForgeError(f"annotation file {str(path)!r} cannot be read: {err.strerror or err}") from None


def require_keys(obj: Any, keys: tuple[str, ...], path: str | Path, fmt: str) -> dict[str, Any]:
    """``obj`` as a dict holding ``keys``, each a list, else a one-line error saying the file is not in format
    ``fmt``."""
    if not isinstance(obj, dict):
        raise VLForgeError(f"annotation file {str(path)!r} is not a {fmt} file: top level is a "
                           f"{type(obj).__name__}, expected an object")
    missing = [k for k in keys if k not in obj]
    if missing:
        raise VLForgeError(f"annotation file {str(path)!r} is not a {fmt} file: "
                           f"missing key(s) {', '.join(missing)}")
    for key in keys:
        if not isinstance(obj[key], list):
            raise VLForgeError(f"annotation file {str(path)!r} is not a {fmt} file: {key!r} is a "
                               f"{type(obj[key]).__name__}, expected a list")
    return obj


def expand_paths(pattern: str) -> list[str]:
    """The files named by a path, a glob pattern (sorted) or WebDataset brace notation
    (``shard-{000000..000099}.tar``, ``{a,b}.tar``; each expansion may itself be a glob), in order; a one-line
    error if nothing matches or a braced name does not exist."""
    if "{" in pattern:
        from braceexpand import braceexpand

        paths = []
        for expanded in braceexpand(pattern):
            if not glob.has_magic(expanded) and not Path(expanded).exists():
                raise VLForgeError(f"annotation file {expanded!r} (from {pattern!r}) does not exist")
            paths += expand_paths(expanded)
        return paths
    if glob.has_magic(pattern):
        paths = sorted(glob.glob(pattern))
        if not paths:
            raise VLForgeError(f"no annotation file matches {pattern!r}")
        return paths
    if not Path(pattern).exists():
        raise VLForgeError(f"annotation file {pattern!r} does not exist")
    return [pattern]
