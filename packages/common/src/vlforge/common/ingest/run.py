"""The ingest driver: read a format's items, check them, write them to the store in batches, count what
happened.

Every batch is one store transaction and the store merges an image id it already holds (captions
deduplicated), so an ingest killed at any moment and run again completes without doubling anything."""

from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter
from pathlib import Path, PurePosixPath

from vlforge.common.errors import VLForgeError
from vlforge.common.ingest.checks import Rejection, check_caption, image_size, read_image, safe_image_file
from vlforge.common.ingest.formats import DEFAULT_SPLIT, FORMATS, IngestFormat
from vlforge.common.ingest.items import Skipped, SourceItem
from vlforge.common.ingest.summary import IngestSummary
from vlforge.common.progress import track
from vlforge.common.records import Caption, ImageRecord
from vlforge.common.store import CaptionStore
from vlforge.common.store.codec import encode_record, record_key, split_prefix

log = logging.getLogger("vlforge.ingest")
LOUD_SKIPS_PER_REASON = 10  # the first skips of each reason are warnings; the rest are logged at INFO (-v)


def ingest(store: CaptionStore, fmt: IngestFormat | str, annotations: str | os.PathLike,
           images: str | os.PathLike | None = None, *, embed_images: bool = False, source: str | None = None,
           split: str | None = None, batch_size: int = 500) -> IngestSummary:
    """Ingest ``annotations`` of format ``fmt`` into ``store`` (opened for writing) and return the counts.

    images: the images root (default: per format). embed_images: store the encoded bytes instead of a path
    relative to the store's image root. source: caption source (default: per format). split: overrides the
    file's split.
    """
    fmt = _format(fmt)
    annotations = os.fspath(annotations)
    source = fmt.default_source if source is None else source
    if not source:
        raise VLForgeError("--source must be a non-empty name")
    if split is not None:
        split_prefix(split)
    if batch_size < 1:
        raise VLForgeError(f"--batch-size must be >= 1, got {batch_size}")
    root = _images_root(fmt, annotations, images)
    embed = embed_images or fmt.always_embedded
    prefix = "" if embed else _path_prefix(store, root)
    builder = _RecordBuilder(fmt, annotations, root, embed, prefix, source, split)
    summary = IngestSummary(format=fmt.name, annotations=annotations)
    seen: dict[str, str] = {}  # image id -> SHA-256 of its image in this input
    skip_log: Counter[str] = Counter()
    batch: list[ImageRecord] = []
    for item in track(fmt.read(annotations, root), "ingest", unit="records"):
        summary.read += 1
        try:
            if isinstance(item, Skipped):
                raise Rejection(item.reason, item.detail)
            record = builder.build(item, summary.captions_dropped, skip_log)
        except Rejection as rejection:
            summary.skipped[rejection.reason] += 1
            _log_skip(skip_log, f"{item.name}: skipped", rejection.reason, rejection.detail)
            continue
        digest = builder.last_digest
        if record.image_id in seen:
            if seen[record.image_id] != digest:
                summary.skipped["id_conflict"] += 1
                _log_skip(skip_log, f"{item.name}: skipped", "id_conflict",
                          f"image id {record.image_id!r} was given to a different image earlier in this input")
                continue
            summary.duplicates += 1
            _log_skip(skip_log, f"{item.name}: merged", "duplicate_id",
                      f"image id {record.image_id!r} repeats an earlier record of the same image; captions merged")
        seen[record.image_id] = digest
        batch.append(record)
        if len(batch) >= batch_size:
            _commit(store, batch, summary, skip_log)
            batch = []
    if batch:
        _commit(store, batch, summary, skip_log)
    return summary


class _RecordBuilder:
    """Turns a SourceItem into a checked ImageRecord, or raises Rejection."""

    def __init__(self, fmt: IngestFormat, annotations: str, root: Path | None, embed: bool, prefix: str,
                 source: str, split: str | None) -> None:
        self.root, self.embed, self.prefix, self.source, self.split = root, embed, prefix, source, split
        self.provenance = {"ingest_format": fmt.name, "file": Path(annotations).name}
        self.last_digest = ""  # SHA-256 of the image of the last record built

    def build(self, item: SourceItem, captions_dropped: Counter[str], skip_log: Counter[str]) -> ImageRecord:
        try:
            record_key(item.image_id)
        except (VLForgeError, UnicodeEncodeError):
            raise Rejection("bad_id", f"image id {item.image_id[:60]!r} is not 1..400 bytes of UTF-8") \
                from None
        split = self.split or item.split or DEFAULT_SPLIT
        try:
            split_prefix(split)
        except (VLForgeError, UnicodeEncodeError):
            raise Rejection("malformed_entry", f"split {split[:60]!r} is not a valid split name") from None
        captions: dict[tuple[str, str, str], Caption] = {}
        for raw in item.captions:
            try:
                caption = self._caption(raw)
            except Rejection as rejection:
                captions_dropped[rejection.reason] += 1
                _log_skip(skip_log, f"{item.name}: caption dropped", rejection.reason, rejection.detail)
                continue
            captions.setdefault(caption.key(), caption)
        if not captions:
            raise Rejection("no_caption", "no usable caption")
        if item.image_bytes is not None:
            data, path = item.image_bytes, None
        else:
            data = read_image(safe_image_file(self.root, item.image_path))
            path = self.prefix + PurePosixPath(item.image_path).as_posix()
        width, height = image_size(data)
        embed = self.embed or path is None
        record = ImageRecord(image_id=item.image_id, split=split, width=width, height=height,
                             captions=list(captions.values()), image_path=None if embed else path,
                             image_bytes=data if embed else None, meta=dict(item.meta))
        try:
            encode_record(record)
        except (UnicodeEncodeError, TypeError, ValueError, OverflowError) as err:
            raise Rejection("invalid_utf8_field", f"a path or meta value cannot be stored ({err})"[:300]) from None
        self.last_digest = hashlib.sha256(data).hexdigest()
        return record

    def _caption(self, raw: object) -> Caption:
        """A checked Caption: a reader's full Caption keeps its source, kind, provenance and scores (lossless
        formats); a raw text gets this run's source, kind "free" and the ingest provenance."""
        if isinstance(raw, Caption):
            text = check_caption(raw.text)
            return Caption(text, raw.source, raw.kind, dict(raw.provenance), dict(raw.scores))
        return Caption(text=check_caption(raw), source=self.source, kind="free", provenance=dict(self.provenance))


def _format(fmt: IngestFormat | str) -> IngestFormat:
    if isinstance(fmt, IngestFormat):
        return fmt
    if fmt not in FORMATS:
        raise VLForgeError(f"unknown ingest format {fmt!r}; one of {', '.join(FORMATS)}")
    return FORMATS[fmt]


def _images_root(fmt: IngestFormat, annotations: str, images: str | os.PathLike | None) -> Path | None:
    if images is None:
        if fmt.always_embedded:
            return None
        if not fmt.images_default_to_annotations_dir:
            raise VLForgeError(f"format {fmt.name} needs --images (the folder holding the images)")
        images = annotations if os.path.isdir(annotations) else Path(annotations).parent
    root = Path(images)
    if not root.is_dir():
        raise VLForgeError(f"images folder {str(root)!r} does not exist or is not a directory")
    return root


def _path_prefix(store: CaptionStore, images: Path) -> str:
    """The prefix that makes a path under ``images`` relative to the store's image root (recording the root
    on a store that has none yet); an error when ``images`` lies outside that root."""
    stored = store.claim_image_root(images)
    root_real, images_real = os.path.realpath(stored), os.path.realpath(images)
    if os.path.commonpath([root_real, images_real]) != root_real:
        raise VLForgeError(f"store {store.path!r} keeps image paths relative to {stored!r}, and --images "
                           f"{str(images)!r} is outside it: use --embed-images or another store")
    rel = os.path.relpath(images_real, root_real)
    return "" if rel == "." else rel.replace(os.sep, "/") + "/"


def _commit(store: CaptionStore, batch: list[ImageRecord], summary: IngestSummary, skip_log: Counter[str]) -> None:
    result = store.put_records(batch, batch_size=len(batch))
    summary.added += result.added
    summary.merged += result.merged
    summary.captions_added += result.captions_added
    summary.split_conflicts += result.split_conflicts
    if result.image_conflicts:
        summary.skipped["id_conflict"] += result.image_conflicts
        for image_id in result.conflict_ids:
            _log_skip(skip_log, f"image id {image_id!r}: skipped", "id_conflict",
                      "the store holds this id for a different image; nothing merged")
    log.info("committed %d records (%d so far)", len(batch), summary.went_in)


def _log_skip(skip_log: Counter[str], what: str, reason: str, detail: str) -> None:
    """Log one skip naming the record ("line 3 of a.jsonl: skipped (malformed_json): ...")."""
    skip_log[reason] += 1
    level = logging.WARNING if skip_log[reason] <= LOUD_SKIPS_PER_REASON else logging.DEBUG
    log.log(level, "%s (%s): %s", what, reason, detail)
    if skip_log[reason] == LOUD_SKIPS_PER_REASON:
        log.warning("further %s skips are logged with -v only", reason)

