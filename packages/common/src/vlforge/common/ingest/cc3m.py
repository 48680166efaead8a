"""Conceptual Captions (CC3M / CC12M) TSV, ``caption<TAB>url`` per row, with --images the img2dataset output
folder (``00000/000000000.jpg`` beside ``.txt`` / ``.json``).

Rows are numbered from 0, blank lines not counted (as img2dataset reads them). A first row whose second field
is not a URL is a header: it names the ``caption`` and ``url`` columns and is not numbered. Rows whose
download failed have no image file and are skipped as missing_image. Image id: the row's img2dataset key
(``img2dataset.KeyScheme``: "000000042" for row 42 with 10000 samples a shard; row 5000 of a 5000-a-shard
download is "000010000"). The URL is kept in ``meta["url"]`` (bytes that
are not UTF-8 as %XX escapes). For the per-sample JSON in meta and failed
downloads counted as such, ingest with ``--format img2dataset`` and this TSV as its input table."""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

from vlforge.common.errors import VLForgeError
from vlforge.common.ingest.files import iter_lines
from vlforge.common.ingest.img2dataset import key_scheme
from vlforge.common.ingest.items import Skipped, SourceItem

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")


def index_downloaded_images(images: Path) -> dict[str, str]:
    """{key: path relative to ``images``} for every ``<shard>/<key>.<image ext>`` img2dataset wrote."""
    found: dict[str, str] = {}
    try:
        shards = sorted((e for e in os.scandir(images) if e.is_dir()), key=lambda e: e.name)
    except OSError as err:
        raise VLForgeError(f"images folder {str(images)!r} cannot be read: {err.strerror or err}") from None
    for shard in shards:
        for entry in os.scandir(shard.path):
            stem, ext = os.path.splitext(entry.name)
            if ext.lower() in IMAGE_EXTENSIONS and stem.isdigit():
                found.setdefault(stem, f"{shard.name}/{entry.name}")
    return found


def read_cc3m(annotations: str, images: Path | None) -> Iterator[SourceItem | Skipped]:
    if images is None:
        raise VLForgeError("format cc3m needs --images (the img2dataset output folder)")
    downloaded = index_downloaded_images(images)
    scheme = None  # read from the folder at the first data row (after the header is checked)
    file_name = Path(annotations).name
    caption_col, url_col = 0, 1
    row = 0
    first = True
    for line_number, line in iter_lines(annotations):
        if not line.strip():
            continue
        fields = line.split("\t")
        is_header = first and len(fields) >= 2 and "://" not in fields[1]
        first = False
        if is_header:
            header = [f.strip().lower() for f in fields]
            if "caption" not in header or "url" not in header:
                raise VLForgeError(f"annotation file {annotations!r} is not a cc3m TSV: the first row is "
                                   "neither caption<TAB>url nor a header naming 'caption' and 'url'")
            caption_col, url_col = header.index("caption"), header.index("url")
            continue
        number, row = row, row + 1
        scheme = scheme or key_scheme(images)
        key = scheme.key(number)
        name = f"row {number} (line {line_number}) of {file_name}"
        if len(fields) <= max(caption_col, url_col):
            yield Skipped(name, "malformed_row", "expected caption<TAB>url")
            continue
        if key not in downloaded:
            yield Skipped(name, "missing_image", "no downloaded image for this row")
            continue
        yield SourceItem(image_id=key, name=name, captions=[fields[caption_col]],
                         image_path=downloaded[key], meta={"url": url_text(fields[url_col])})


def url_text(url: str) -> str:
    """The URL as valid UTF-8: bytes that are not UTF-8 (kept as lone surrogates by the line reader) become %XX
    escapes (RFC 3986), so one bad byte in a URL never costs its record."""
    raw = url.encode("utf-8", "surrogateescape")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return urllib.parse.quote(raw, safe="".join(map(chr, range(33, 127))))
