"""verify_store: check a store end to end and report every problem (never raises for damage it can describe).

Checks: every record decodes and sits under its own id; required fields and types; caption kinds valid, texts
non-empty (but a generation result's, which may be ""), no duplicate captions; image paths stay under the root;
images decode and match the recorded size (unless ``check_images=False``); the split ordinal index is dense and
agrees with the records; the stored counts equal counts recomputed from the records.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vlforge.common.errors import VLForgeError
from vlforge.common.progress import track
from vlforge.common.records import Caption, ImageRecord
from vlforge.common.store import codec
from vlforge.common.store.counts import add_record, empty_counts
from vlforge.common.store.images import check_relative_path
from vlforge.common.store.lmdb_store import CaptionStore


@dataclass
class VerifyReport:
    """records: records seen; images_checked: images decoded; problems: one line each, naming the record or key."""

    records: int = 0
    images_checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_store(store: CaptionStore, check_images: bool = True) -> VerifyReport:
    report = VerifyReport()
    split_of: dict[str, str] = {}
    counts = empty_counts()
    for key, raw in track(store.iter_raw(codec.RECORD_PREFIX), "verify", store.counts()["images"], "records"):
        report.records += 1
        key_id = key[len(codec.RECORD_PREFIX):].decode("utf-8", "replace")
        try:
            record = codec.decode_record(raw, key)
        except VLForgeError as err:
            report.problems.append(str(err))
            continue
        if record.image_id != key_id:
            report.problems.append(f"record {key_id!r} holds image_id {record.image_id!r}")
            continue
        report.problems.extend(_record_problems(record))
        split_of[record.image_id] = record.split
        add_record(counts, record)
        if check_images and (record.image_bytes is not None or record.image_path):
            report.images_checked += 1
            try:
                image = store.load_image(record)
            except VLForgeError as err:
                report.problems.append(str(err))
            else:
                if record.width and record.height and image.size != (record.width, record.height):
                    report.problems.append(f"record {record.image_id!r}: recorded size {record.width}x"
                                           f"{record.height} but the image is {image.size[0]}x{image.size[1]}")
    report.problems.extend(_split_index_problems(store, split_of))
    stored = store.counts()
    if dict(stored) != dict(counts):
        report.problems.append(f"stored counts {_brief(stored)} differ from the records' {_brief(counts)}")
    return report


def _record_problems(record: ImageRecord) -> list[str]:
    rid = record.image_id
    problems = []
    if not isinstance(record.split, str) or not record.split:
        problems.append(f"record {rid!r}: empty split")
    if not isinstance(record.width, int) or not isinstance(record.height, int) or min(record.width, record.height) < 0:
        problems.append(f"record {rid!r}: width/height {record.width!r}x{record.height!r} are not sizes")
    if (record.image_path is None) == (record.image_bytes is None):
        problems.append(f"record {rid!r}: needs exactly one of image_path and image_bytes")
    if record.image_path is not None:
        try:
            check_relative_path(record.image_path, f"record {rid!r}")
        except VLForgeError as err:
            problems.append(str(err))
    seen = set()
    for index, caption in enumerate(record.captions):
        if not isinstance(caption.text, str) or not caption.text.strip() and not _generated(caption):
            problems.append(f"record {rid!r}: caption {index} has empty text")
        if not isinstance(caption.source, str) or not caption.source:
            problems.append(f"record {rid!r}: caption {index} has no source")
        if caption.key() in seen:
            problems.append(f"record {rid!r}: caption {index} is a duplicate")
        seen.add(caption.key())
    return problems


def _generated(caption: Caption) -> bool:
    """A generation result (``common.lm.generated_store.generated_caption``: its provenance names the generator),
    which may be empty: an empty generation, or a critic-rewrite that dropped every sentence, is stored as ""."""
    return isinstance(caption.provenance, dict) and bool(caption.provenance.get("generator"))


def _split_index_problems(store: CaptionStore, split_of: dict[str, str]) -> list[str]:
    problems = []
    ordinals: dict[str, list[int]] = {}
    listed: dict[str, str] = {}
    for key, raw in store.iter_raw(codec.SPLIT_PREFIX):
        split = key[len(codec.SPLIT_PREFIX):-9].decode("utf-8", "replace")
        ordinal = codec.ordinal_of(key)
        image_id = raw.decode("utf-8", "replace")
        ordinals.setdefault(split, []).append(ordinal)
        where = f"split index {split!r}[{ordinal}]"
        if image_id not in split_of:
            problems.append(f"{where} names image id {image_id!r} which has no valid record")
        elif split_of[image_id] != split:
            problems.append(f"{where} names image id {image_id!r} whose record is in split {split_of[image_id]!r}")
        if image_id in listed:
            problems.append(f"{where} lists image id {image_id!r} again (also in {listed[image_id]!r})")
        listed[image_id] = split
    for split, found in ordinals.items():
        if sorted(found) != list(range(len(found))):
            problems.append(f"split index {split!r} is not dense (ordinals 0..{len(found) - 1} expected)")
    for image_id, split in split_of.items():
        if image_id not in listed:
            problems.append(f"record {image_id!r} (split {split!r}) is missing from the split index")
    return problems


def _brief(counts: dict) -> str:
    return f"(images={counts.get('images')}, captions={counts.get('captions')}, splits={counts.get('splits')})"
