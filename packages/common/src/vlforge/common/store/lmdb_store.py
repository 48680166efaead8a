"""CaptionStore: one LMDB environment per dataset, one msgpack record per image (DESIGN.md section 4).

Concurrency model
- One writer at a time: LMDB's own write lock serialises write transactions across processes (a second writer
  waits for the first transaction to end). Every write is one transaction, so a killed writer loses only its open
  transaction; the map size doubles by itself on ``MapFullError`` (the transaction is redone).
- Readers open ``readonly=True``. The default ``lock=True`` keeps LMDB's reader table, which is what makes reading
  safe beside a live writer (MVCC snapshots). ``lock=False`` skips it and is only safe for a store nobody writes to
  (an immutable, finished store, or one on a read-only filesystem). When a writer has grown the map past a reader's
  mapping, the reader adopts the new size (``MapResizedError`` -> ``set_mapsize(0)``) and retries.
- The environment is opened lazily per process, shared by all store objects on the same directory, closed in the
  parent before any fork and never pickled (see ``environments``), so a store can be handed to DataLoader workers
  (fork or spawn).
"""

from __future__ import annotations

import datetime as _dt
import errno
import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, TypeVar

import lmdb
from PIL import Image

import vlforge.common as _common
from vlforge.common.errors import VLForgeError
from vlforge.common.records import Caption, ImageRecord
from vlforge.common.store import codec, environments
from vlforge.common.store.counts import StoreCounts, add_record, empty_counts
from vlforge.common.store.images import check_relative_path, decode_image, read_image_file, resolve_image_path

T = TypeVar("T")
DEFAULT_MAP_SIZE = 64 << 20
_READ_CHUNK = 512
_SCAN_CHUNK = 4096
_MAX_RESIZE_RETRIES = 64
_MAX_CREATE_RETRIES = 500


_MAX_CONFLICT_IDS = 1000


@dataclass
class PutResult:
    """What a bulk put did: new images, images merged into existing ones, captions actually added, records whose
    incoming split differed from the stored one (the stored split is kept), and records refused because their id is
    stored for a different image (``image_conflicts``; the first ids in ``conflict_ids``)."""

    added: int = 0
    merged: int = 0
    captions_added: int = 0
    split_conflicts: int = 0
    image_conflicts: int = 0
    conflict_ids: list[str] = field(default_factory=list)

    def __iadd__(self, other: PutResult) -> PutResult:
        self.added += other.added
        self.merged += other.merged
        self.captions_added += other.captions_added
        self.split_conflicts += other.split_conflicts
        self.image_conflicts += other.image_conflicts
        self.conflict_ids.extend(other.conflict_ids[:_MAX_CONFLICT_IDS - len(self.conflict_ids)])
        return self


class CaptionStore:
    """An LMDB caption store. ``CaptionStore(path)`` opens an existing store read-only; ``create`` makes one.

    Records are keyed by image id and iterated in sorted id order. A record's image is either embedded bytes or a
    path relative to the image root (the ``image_root`` argument, else the root recorded in ``info``).
    """

    def __init__(self, path: str | os.PathLike, readonly: bool = True, image_root: str | os.PathLike | None = None,
                 lock: bool = True, map_size: int = DEFAULT_MAP_SIZE):
        _require_store_dir(os.fspath(path))
        self._open(path, readonly, image_root, lock, map_size, initialize=False)

    def _open(self, path: str | os.PathLike, readonly: bool, image_root: str | os.PathLike | None, lock: bool,
              map_size: int, initialize: bool) -> None:
        self.path = os.fspath(path)
        self.readonly = readonly
        self.lock = lock
        self._map_size = int(map_size)
        self._image_root_override = os.fspath(image_root) if image_root is not None else None
        self._key: str | None = None
        self.created = False  # True only on the object whose create() made the store (see remove_if_unused)
        self._writer_noted = False
        if not readonly and not os.access(self.path, os.W_OK):
            if initialize and not os.path.isdir(self.path):
                raise _StoreRemoved  # create() saw the store, then its creator moved it away
            raise VLForgeError(f"store directory {self.path!r} is not writable")
        self._key = environments.acquire(self.path, writable=not readonly, lock=lock, map_size=self._map_size)
        try:
            raw, removed = self._read(lambda txn: (txn.get(codec.INFO_KEY), txn.get(codec.REMOVED_KEY)))
            if removed is not None:
                if initialize:
                    raise _StoreRemoved
                raise VLForgeError(f"store {self.path!r} was removed by the failed ingest that created it; run again")
            if raw is None and initialize:
                raw = self._write(lambda txn: _initialize(txn, self.path))
            if raw is None:
                raise VLForgeError(f"{self.path!r} is an LMDB environment but not a vlforge store "
                                   f"(no {codec.INFO_KEY.decode()!r} key)")
            self._info = codec.decode_json(raw, codec.INFO_KEY)
            _check_schema(self.path, self._info)
        except environments.StoreMoved:
            self.close()
            if initialize:
                raise _StoreRemoved from None
            raise
        except BaseException:
            self.close()
            raise

    @classmethod
    def create(cls, path: str | os.PathLike, image_root: str | os.PathLike | None = None,
               info: dict[str, Any] | None = None, map_size: int = DEFAULT_MAP_SIZE) -> CaptionStore:
        """Create a store directory (or open an existing store for writing) and record its metadata.

        Creation is atomic: the store is initialised (schema_version, created (UTC ISO time), created_by,
        image_root None) in a hidden folder beside ``path`` and renamed into place, so a concurrent opener sees either
        no store or a complete one, and exactly one of two concurrent creators creates it (its ``created`` is True).
        ``image_root`` is recorded when the store has none (see ``claim_image_root``); ``info`` updates metadata.
        """
        path = os.fspath(path)
        if os.path.exists(path) and not os.path.isdir(path):
            raise VLForgeError(f"store path {path!r} exists and is not a directory")
        if os.path.isdir(path) and not set(os.listdir(path)) <= {"data.mdb", "lock.mdb"}:
            raise VLForgeError(f"{path!r} is a non-empty directory that is not a vlforge store")
        store = cls.__new__(cls)
        for _ in range(_MAX_CREATE_RETRIES):  # a store being removed by its creator is waited out, then made again
            created = not os.path.isfile(os.path.join(path, "data.mdb")) and _create_atomically(path, map_size)
            try:
                store._open(path, readonly=False, image_root=None, lock=True, map_size=map_size, initialize=True)
                break
            except _StoreRemoved:
                time.sleep(0.01)
        else:
            raise VLForgeError(f"store {path!r} kept being removed while it was opened; run again")
        store.created = created
        store._writer_noted = created  # the creation transaction counted this writer
        if image_root is not None:
            store.claim_image_root(image_root)
        if info:
            store.set_info(**info)
        return store

    def remove_if_unused(self) -> bool:
        """Remove the store if this object created it and no image and no other writer's transaction reached it.

        The check and a ``meta/removed`` tombstone are one write transaction (under LMDB's writer lock), so a writer
        that opened the store before the removal never writes into the deleted file: if it had written nothing yet,
        its next write creates the store again and goes there; otherwise (impossible here: the check saw only one
        writer) it fails with an error. Returns whether the store was removed.
        """
        if not self.created or self._key is None:
            return False

        def txn_fn(txn: lmdb.Transaction) -> bool:
            counts = codec.decode_json(txn.get(codec.COUNTS_KEY), codec.COUNTS_KEY)
            writers = codec.decode_json(txn.get(codec.WRITERS_KEY) or b"1", codec.WRITERS_KEY)
            if counts.get("images") or writers != 1:
                return False
            txn.put(codec.REMOVED_KEY, b"1")
            return True

        removed = self._write(txn_fn)
        self.close()
        if removed:  # moved away in one rename, so no one opens a half-deleted environment; then deleted
            parent = os.path.dirname(os.path.abspath(self.path))
            graveyard = tempfile.mkdtemp(prefix=f".{os.path.basename(os.path.abspath(self.path))}.removed-", dir=parent)
            try:
                os.rename(self.path, os.path.join(graveyard, "store"))
            except OSError:
                pass
            shutil.rmtree(graveyard, ignore_errors=True)
        return removed

    # ----------------------------------------------------------------- environment
    def _env_now(self) -> lmdb.Environment:
        if self._key is None:
            raise VLForgeError(f"store {self.path!r} is closed")
        return environments.environment(self._key)

    def _read(self, fn: Callable[[lmdb.Transaction], T]) -> T:
        env = self._env_now()
        for _ in range(_MAX_RESIZE_RETRIES):
            try:
                with env.begin() as txn:
                    return fn(txn)
            except lmdb.MapResizedError:
                env.set_mapsize(0)
            except lmdb.Error as err:
                raise _damaged(self.path, err) from None
        raise VLForgeError(f"store {self.path!r}: the map kept growing while reading; retry")

    def _write(self, fn: Callable[[lmdb.Transaction], T]) -> T:
        """Run ``fn`` in one write transaction; on a full map, abort, double the map and redo it.

        Every transaction first refuses a store its creator removed (``remove_if_unused``) and, on this object's first
        write, counts one more writer session in ``meta/writers``."""
        if self.readonly:
            raise VLForgeError(f"store {self.path!r} is open read-only; open it with readonly=False to write")
        env = self._env_now()

        def guarded(txn: lmdb.Transaction) -> T:
            if txn.get(codec.REMOVED_KEY) is not None:
                raise _StoreRemoved
            if not self._writer_noted:
                writers = codec.decode_json(txn.get(codec.WRITERS_KEY) or b"1", codec.WRITERS_KEY)
                txn.put(codec.WRITERS_KEY, codec.encode_json(writers + 1))
            return fn(txn)

        while True:
            try:
                with env.begin(write=True) as txn:
                    result = guarded(txn)
                self._writer_noted = True
                return result
            except _StoreRemoved:
                if self._writer_noted:
                    raise VLForgeError(f"store {self.path!r} was removed by the failed ingest that created it while "
                                       "this writer had it open; nothing more was written; run again") from None
                env = self._recreate()  # nothing of ours was in it: create the store again and write there
            except lmdb.MapFullError:
                env.set_mapsize(env.info()["map_size"] * 2)
            except lmdb.MapResizedError:
                env.set_mapsize(0)
            except lmdb.Error as err:
                raise _damaged(self.path, err) from None

    def _recreate(self) -> lmdb.Environment:
        """Create the store again (atomically; or join whoever did first) after its creator removed it."""
        environments.release(self._key)
        self._key = None
        for _ in range(_MAX_CREATE_RETRIES):
            if not os.path.isfile(os.path.join(self.path, "data.mdb")):
                _create_atomically(self.path, self._map_size)
            self._key = environments.acquire(self.path, writable=True, lock=True, map_size=self._map_size)
            try:
                raw, removed = self._read(lambda txn: (txn.get(codec.INFO_KEY), txn.get(codec.REMOVED_KEY)))
            except environments.StoreMoved:  # moved away (or made again) between the check above and the open
                raw, removed = None, None
            if removed is None and raw is not None:
                self._info = codec.decode_json(raw, codec.INFO_KEY)
                return self._env_now()
            environments.release(self._key)  # still the removed store, before its creator moved it away
            self._key = None
            time.sleep(0.01)
        raise VLForgeError(f"store {self.path!r} kept being removed while this writer used it; run again")

    def close(self) -> None:
        """Release this object's use of the environment (closed when no store object in the process uses it)."""
        if self._key is not None:
            environments.release(self._key)
            self._key = None

    def __enter__(self) -> CaptionStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_key"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._key = environments.acquire(self.path, writable=not self.readonly, lock=self.lock,
                                         map_size=self._map_size)

    def __del__(self) -> None:
        if getattr(self, "_key", None) is not None and environments is not None:  # None at interpreter exit
            try:
                self.close()
            except Exception:  # noqa: BLE001 - a finaliser must not raise; the OS reclaims the handle at exit
                pass

    # ----------------------------------------------------------------- metadata
    @property
    def info(self) -> dict[str, Any]:
        """Store-level metadata as read at open (or after ``set_info``): schema_version, created, image_root, ..."""
        return dict(self._info)

    def set_info(self, **updates: Any) -> None:
        """Update store-level metadata in one transaction; the schema version cannot be changed here, and the image
        root only while no record has an image path (they are relative to it)."""
        if "schema_version" in updates:
            raise VLForgeError("set_info cannot change schema_version")

        def txn_fn(txn: lmdb.Transaction) -> dict[str, Any]:
            info = codec.decode_json(txn.get(codec.INFO_KEY), codec.INFO_KEY)
            old_root = info.get("image_root")
            if "image_root" in updates and old_root and updates["image_root"] != old_root \
                    and _has_path_images(txn):
                raise VLForgeError(f"store {self.path!r} keeps image paths relative to {old_root!r}; its image root "
                                   f"cannot change to {updates['image_root']!r}")
            info.update(updates)
            txn.put(codec.INFO_KEY, codec.encode_json(info))
            return info

        self._info = self._write(txn_fn)

    def claim_image_root(self, images: str | os.PathLike) -> str:
        """The store's image root, recording ``images`` (absolute) first if it has none, in one write transaction,
        so two writers starting on a fresh store agree on one root (the second one sees the first one's)."""
        wanted = os.path.abspath(os.fspath(images))

        def txn_fn(txn: lmdb.Transaction) -> dict[str, Any]:
            info = codec.decode_json(txn.get(codec.INFO_KEY), codec.INFO_KEY)
            if info.get("image_root") is None:
                info["image_root"] = wanted
                txn.put(codec.INFO_KEY, codec.encode_json(info))
            return info

        self._info = self._write(txn_fn)
        return self._info["image_root"]

    @property
    def image_root(self) -> str | None:
        return self._image_root_override or self._info.get("image_root")

    def counts(self) -> StoreCounts:
        """{"images", "captions", "splits": {split: images}, "by_source": {source: captions}, "by_kind": {...}}."""
        counts = codec.decode_json(self._read(lambda txn: txn.get(codec.COUNTS_KEY)), codec.COUNTS_KEY)
        if not isinstance(counts, dict) or not all(isinstance(counts.get(k), int) for k in ("images", "captions")) \
                or not all(isinstance(counts.get(k), dict) for k in ("splits", "by_source", "by_kind")):
            raise VLForgeError(f"store {self.path!r}: the counts key {codec.COUNTS_KEY.decode()!r} is damaged; "
                               "run `vlforge-store verify`")
        return counts

    def __len__(self) -> int:
        return self.counts()["images"]

    def __contains__(self, image_id: object) -> bool:
        if not isinstance(image_id, str):
            return False
        key = codec.record_key(image_id)
        return self._read(lambda txn: txn.get(key)) is not None

    # ----------------------------------------------------------------- reading
    def get(self, image_id: str) -> ImageRecord:
        key = codec.record_key(image_id)
        raw = self._read(lambda txn: txn.get(key))
        if raw is None:
            raise VLForgeError(f"image id {image_id!r} is not in the store {self.path!r}")
        return codec.decode_record(raw, key)

    def get_at(self, split: str, ordinal: int, meta: bool = True) -> ImageRecord:
        """The ordinal-th image added to ``split`` (0-based; dense; insertion order); ``meta=False`` leaves its
        ``meta`` unread (None; see :func:`codec.decode_record`)."""
        skey = codec.split_key(split, ordinal)

        def txn_fn(txn: lmdb.Transaction) -> tuple[bytes | None, bytes | None]:
            image_id = txn.get(skey)
            return image_id, (txn.get(codec.RECORD_PREFIX + image_id) if image_id is not None else None)

        image_id, raw = self._read(txn_fn)
        if image_id is None:
            raise VLForgeError(f"split {split!r} has no image number {ordinal} in the store {self.path!r}")
        if raw is None:
            raise VLForgeError(f"split index of {split!r} names image id {image_id!r} which is not in the store")
        return codec.decode_record(raw, codec.RECORD_PREFIX + image_id, meta=meta)

    def ids(self, split: str | None = None) -> list[str]:
        """All image ids (or those of one split), sorted."""
        if split is None:
            keys = [k for k, _ in self.iter_raw(codec.RECORD_PREFIX, values=False)]
            return [k[len(codec.RECORD_PREFIX):].decode("utf-8") for k in keys]
        return sorted(v.decode("utf-8") for _, v in self.iter_raw(codec.split_prefix(split)))

    def iter_records(self, split: str | None = None, source: str | None = None) -> Iterator[ImageRecord]:
        """Records in sorted id order; ``source`` keeps only records having a caption of that source.

        Reads in chunks, each in its own short read transaction, so a long iteration never pins an old snapshot.
        """
        if split is None:
            pairs: Iterable[tuple[bytes, bytes]] = self.iter_raw(codec.RECORD_PREFIX)
        else:
            pairs = self._records_for_ids(self.ids(split))
        for key, raw in pairs:
            record = codec.decode_record(raw, key)
            if source is None or any(c.source == source for c in record.captions):
                yield record

    def _records_for_ids(self, ids: list[str]) -> Iterator[tuple[bytes, bytes]]:
        for start in range(0, len(ids), _READ_CHUNK):
            keys = [codec.record_key(i) for i in ids[start:start + _READ_CHUNK]]
            values = self._read(lambda txn, keys=keys: [txn.get(k) for k in keys])
            for key, raw in zip(keys, values):
                if raw is not None:
                    yield key, raw

    def iter_raw(self, prefix: bytes, values: bool = True) -> Iterator[tuple[bytes, bytes | None]]:
        """(key, raw value) of every key starting with ``prefix``, byte-sorted, in chunked read transactions."""
        start = prefix
        while True:
            def txn_fn(txn: lmdb.Transaction, start: bytes = start) -> list[tuple[bytes, bytes | None]]:
                cursor = txn.cursor()
                out: list[tuple[bytes, bytes | None]] = []
                if not cursor.set_range(start):
                    return out
                for item in cursor.iternext(keys=True, values=values):
                    key, value = item if values else (item, None)
                    if not key.startswith(prefix) or len(out) >= _SCAN_CHUNK:
                        break
                    out.append((key, value))
                return out

            chunk = self._read(txn_fn)
            yield from chunk
            if len(chunk) < _SCAN_CHUNK:
                return
            start = chunk[-1][0] + b"\x00"

    def load_image(self, record: ImageRecord) -> Image.Image:
        """The record's image as RGB: decoded from its embedded bytes or read from image_root/image_path."""
        what = f"record {record.image_id!r}"
        if record.image_bytes is not None:
            return decode_image(record.image_bytes, what)
        if not record.image_path:
            raise VLForgeError(f"{what} has neither image bytes nor an image path")
        root = self.image_root
        if root is None:
            raise VLForgeError(f"{what} has image path {record.image_path!r} but the store {self.path!r} has no "
                               "image root; pass image_root=")
        full = resolve_image_path(root, record.image_path, what)
        return decode_image(read_image_file(full, what), f"{what} ({full})")

    # ----------------------------------------------------------------- writing
    def put_records(self, records: Iterable[ImageRecord], batch_size: int = 1000) -> PutResult:
        """Bulk ingest, one transaction per ``batch_size`` records. Idempotent: an image id already stored is merged
        (captions deduplicated by ``Caption.key()``, meta keys updated; the stored split and image are kept, the
        size too unless it was unknown (0)), never doubled -- but only when it is the same image (same path under
        the image root, or the same content by SHA-256): a record whose id is stored for a different image is
        refused and counted (``image_conflicts``), never merged onto it. A structurally invalid record (also one
        that msgpack cannot encode, e.g. a lone surrogate in a path or meta string) aborts only its own batch, with
        a VLForgeError naming it."""
        if batch_size < 1:
            raise VLForgeError(f"batch_size must be >= 1, got {batch_size}")
        total = PutResult()
        iterator = iter(records)
        while batch := list(islice(iterator, batch_size)):
            for record in batch:
                _validate(record)
            total += self._write(lambda txn, batch=batch, root=self.image_root: _put_batch(txn, batch, root))
        return total

    def append_captions(self, captions_by_id: dict[str, list[Caption]]) -> int:
        """Add captions to existing images in ONE transaction; returns the number actually added.

        Idempotent (a caption whose ``key()`` is already on the image is skipped). An unknown image id aborts the
        whole transaction with a VLForgeError naming it; nothing is written.
        """
        for image_id, captions in captions_by_id.items():
            for caption in captions:
                _validate_caption(caption, image_id)

        def txn_fn(txn: lmdb.Transaction) -> int:
            counts = codec.decode_json(txn.get(codec.COUNTS_KEY), codec.COUNTS_KEY)
            added = 0
            for image_id in sorted(captions_by_id):
                key = codec.record_key(image_id)
                raw = txn.get(key)
                if raw is None:
                    raise VLForgeError(f"append_captions: image id {image_id!r} is not in the store {self.path!r}")
                record = codec.decode_record(raw, key)
                add_record(counts, record, -1)
                added += _add_new_captions(record, captions_by_id[image_id])
                add_record(counts, record, +1)
                txn.put(key, codec.encode_record(record))
            txn.put(codec.COUNTS_KEY, codec.encode_json(counts))
            return added

        return self._write(txn_fn)

    def set_caption_scores(self, scores_by_id: dict[str, dict[tuple[str, str, str], dict[str, Any]]]) -> int:
        """Merge score entries into existing captions in ONE transaction; returns the number of captions changed.

        ``scores_by_id[image_id][caption.key()]`` is the dict merged into that caption's ``scores`` (other keys
        kept). Idempotent: writing the same scores again changes nothing. An unknown image id or caption key aborts
        the whole transaction with a VLForgeError naming it; nothing is written. Counts are unaffected.
        """

        def txn_fn(txn: lmdb.Transaction) -> int:
            changed = 0
            for image_id in sorted(scores_by_id):
                key = codec.record_key(image_id)
                raw = txn.get(key)
                if raw is None:
                    raise VLForgeError(f"set_caption_scores: image id {image_id!r} is not in the store {self.path!r}")
                record = codec.decode_record(raw, key)
                captions = {caption.key(): caption for caption in record.captions}
                for caption_key, scores in scores_by_id[image_id].items():
                    caption = captions.get(tuple(caption_key))
                    if caption is None:
                        raise VLForgeError(f"set_caption_scores: record {image_id!r} has no caption {caption_key!r}")
                    if any(caption.scores.get(name) != value for name, value in scores.items()):
                        caption.scores.update(scores)
                        changed += 1
                txn.put(key, codec.encode_record(record))
            return changed

        return self._write(txn_fn)


# --------------------------------------------------------------------- helpers
def _create_atomically(path: str, map_size: int) -> bool:
    """Initialise a store in a hidden folder beside ``path`` and rename it into place; False when another process
    made ``path`` a store first (then the hidden folder is removed and that store is used)."""
    parent = os.path.dirname(os.path.abspath(path)) or "."
    try:
        os.makedirs(parent, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=f".{os.path.basename(os.path.abspath(path))}.creating-", dir=parent)
    except OSError as err:
        raise VLForgeError(f"cannot create store directory {path!r}: {err.strerror or err}") from None
    try:
        env = environments.open_environment(staging, readonly=False, lock=True, map_size=map_size, create=True)
        try:
            with env.begin(write=True) as txn:
                _initialize(txn, path)
                txn.put(codec.WRITERS_KEY, codec.encode_json(1))
        finally:
            env.close()
        try:
            os.rename(staging, path)  # atomic; onto an existing non-empty folder it fails
            return True
        except OSError as err:
            if err.errno not in (errno.EEXIST, errno.ENOTEMPTY) or not os.path.isfile(os.path.join(path, "data.mdb")):
                raise VLForgeError(f"cannot create store directory {path!r}: {err.strerror or err}") from None
            return False
    finally:
        shutil.rmtree(staging, ignore_errors=True)


class _StoreRemoved(Exception):
    """Raised inside a write transaction that found the ``meta/removed`` tombstone (the transaction aborts)."""


def _damaged(path: str, err: lmdb.Error) -> VLForgeError:
    return VLForgeError(f"store {path!r} is damaged or unreadable ({type(err).__name__}: "
                        f"{str(err).splitlines()[0] if str(err) else 'no detail'}); run `vlforge-store verify`")


def _has_path_images(txn: lmdb.Transaction) -> bool:
    cursor = txn.cursor()
    if not cursor.set_range(codec.RECORD_PREFIX):
        return False
    for key, raw in cursor:
        if not key.startswith(codec.RECORD_PREFIX):
            return False
        if codec.decode_record(raw, key).image_path is not None:
            return True
    return False


def _initialize(txn: lmdb.Transaction, path: str) -> bytes:
    """First transaction of a new store: metadata and zero counts (refused if the environment holds other data;
    when another writer initialised it first, its metadata is kept)."""
    existing = txn.get(codec.INFO_KEY)
    if existing is not None:
        return existing
    if txn.stat()["entries"]:
        raise VLForgeError(f"{path!r} is an LMDB environment with data but no vlforge metadata: not a vlforge store")
    raw = codec.encode_json({"schema_version": codec.SCHEMA_VERSION,
                             "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                             "created_by": f"vlforge-common {_common.__version__}", "image_root": None})
    txn.put(codec.INFO_KEY, raw)
    txn.put(codec.COUNTS_KEY, codec.encode_json(empty_counts()))
    return raw


def _require_store_dir(path: str) -> None:
    if not os.path.exists(path):
        raise VLForgeError(f"store {path!r} does not exist")
    if not os.path.isdir(path) or not os.path.isfile(os.path.join(path, "data.mdb")):
        raise VLForgeError(f"{path!r} is not a vlforge store (no data.mdb directory)")


def _check_schema(path: str, info: dict[str, Any]) -> None:
    version = info.get("schema_version") if isinstance(info, dict) else None
    if not isinstance(version, int):
        raise VLForgeError(f"store {path!r} has no integer schema_version in its metadata")
    if version > codec.SCHEMA_VERSION:
        raise VLForgeError(f"store {path!r} has schema version {version}, this vlforge reads <= "
                           f"{codec.SCHEMA_VERSION}; upgrade vlforge-common")


def _validate_caption(caption: Any, image_id: str) -> None:
    if not isinstance(caption, Caption):
        raise VLForgeError(f"record {image_id!r}: a caption is {type(caption).__name__}, not Caption")
    if not isinstance(caption.text, str) or not isinstance(caption.source, str) or not caption.source:
        raise VLForgeError(f"record {image_id!r}: caption text must be str and source a non-empty str")


def _validate(record: Any) -> None:
    if not isinstance(record, ImageRecord):
        raise VLForgeError(f"put_records expects ImageRecord, got {type(record).__name__}")
    rid = record.image_id
    if not isinstance(rid, str) or not rid:
        raise VLForgeError(f"record {rid!r}: image_id must be a non-empty str")
    codec.record_key(rid)
    if not isinstance(record.split, str):
        raise VLForgeError(f"record {rid!r}: split must be a str")
    codec.split_prefix(record.split)
    if not (isinstance(record.width, int) and isinstance(record.height, int)) or record.width < 0 or record.height < 0:
        raise VLForgeError(f"record {rid!r}: width and height must be non-negative ints")
    if not isinstance(record.meta, dict):
        raise VLForgeError(f"record {rid!r}: meta must be a dict (a record read with meta=False cannot be written)")
    if (record.image_path is None) == (record.image_bytes is None):
        raise VLForgeError(f"record {rid!r}: exactly one of image_path and image_bytes must be set")
    if record.image_path is not None:
        check_relative_path(record.image_path, f"record {rid!r}")
    elif not isinstance(record.image_bytes, bytes):
        raise VLForgeError(f"record {rid!r}: image_bytes must be bytes")
    for caption in record.captions:
        _validate_caption(caption, rid)
    try:
        codec.encode_record(record)
    except (UnicodeEncodeError, TypeError, ValueError, OverflowError) as err:
        raise VLForgeError(f"record {rid!r} cannot be stored: {type(err).__name__}: {err}") from None


def _add_new_captions(record: ImageRecord, captions: Iterable[Caption]) -> int:
    seen = {c.key() for c in record.captions}
    added = 0
    for caption in captions:
        if caption.key() not in seen:
            seen.add(caption.key())
            record.captions.append(caption)
            added += 1
    return added


def image_digest(record: ImageRecord, root: str | None) -> str | None:
    """SHA-256 of the record's encoded image (embedded bytes, or its file under ``root``); None if unreadable."""
    if record.image_bytes is not None:
        return hashlib.sha256(record.image_bytes).hexdigest()
    if not root or not record.image_path:
        return None
    try:
        return hashlib.sha256(read_image_file(resolve_image_path(root, record.image_path, "image"), "image")
                              ).hexdigest()
    except VLForgeError:
        return None


def same_image(stored: ImageRecord, incoming: ImageRecord, root: str | None) -> bool:
    """Whether two records of one id hold the same image: the same path under one root, the same bytes, or the
    same content hash; an image that cannot be read is never assumed to be the same."""
    if stored.image_path is not None and stored.image_path == incoming.image_path:
        return True
    if stored.image_bytes is not None and incoming.image_bytes is not None:
        return stored.image_bytes == incoming.image_bytes
    digest = image_digest(stored, root)
    return digest is not None and digest == image_digest(incoming, root)


def _put_batch(txn: lmdb.Transaction, batch: list[ImageRecord], root: str | None) -> PutResult:
    result = PutResult()
    counts = codec.decode_json(txn.get(codec.COUNTS_KEY), codec.COUNTS_KEY)
    for incoming in batch:
        key = codec.record_key(incoming.image_id)
        raw = txn.get(key)
        if raw is None:
            record = ImageRecord(image_id=incoming.image_id, split=incoming.split, width=incoming.width,
                                 height=incoming.height, captions=[], image_path=incoming.image_path,
                                 image_bytes=incoming.image_bytes, meta=dict(incoming.meta))
            result.captions_added += _add_new_captions(record, incoming.captions)
            ordinal = counts["splits"].get(record.split, 0)
            txn.put(codec.split_key(record.split, ordinal), incoming.image_id.encode("utf-8"))
            result.added += 1
        else:
            record = codec.decode_record(raw, key)
            if not same_image(record, incoming, root):
                result.image_conflicts += 1
                if len(result.conflict_ids) < _MAX_CONFLICT_IDS:
                    result.conflict_ids.append(incoming.image_id)
                continue
            add_record(counts, record, -1)
            if incoming.split != record.split:
                result.split_conflicts += 1
            if not (record.width and record.height):
                record.width, record.height = incoming.width, incoming.height
            record.meta.update(incoming.meta)
            result.captions_added += _add_new_captions(record, incoming.captions)
            result.merged += 1
        add_record(counts, record, +1)
        txn.put(key, codec.encode_record(record))
    txn.put(codec.COUNTS_KEY, codec.encode_json(counts))
    return result
