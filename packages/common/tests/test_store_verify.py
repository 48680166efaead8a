"""verify_store finds each kind of damage and names the record or key; a sound store verifies clean."""

import io
import json

import lmdb
import msgpack
import pytest
from PIL import Image

from vlforge.common.records import Caption, ImageRecord
from vlforge.common.store import CaptionStore, codec
from vlforge.common.store.verify import verify_store


def png(size=(8, 8)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (5, 5, 5)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def store_path(tmp_path):
    store = CaptionStore.create(tmp_path / "s")
    store.put_records([ImageRecord(f"i{n}", "train" if n % 2 else "val", 8, 8, [Caption(f"c{n}", "gt")],
                                   image_bytes=png()) for n in range(6)])
    store.close()
    return tmp_path / "s"


def damage(path, fn):
    env = lmdb.open(str(path))
    with env.begin(write=True) as txn:
        fn(txn)
    env.close()


F = {name: n for n, name in enumerate(codec.RECORD_FIELDS)}
TEXT, KIND = codec.CAPTION_FIELDS.index("text"), codec.CAPTION_FIELDS.index("kind")


def raw_record(txn, image_id):
    return msgpack.unpackb(txn.get(b"rec/" + image_id.encode()), raw=False)


def test_sound_store_verifies_clean(store_path):
    report = verify_store(CaptionStore(store_path))
    assert report.ok and report.records == 6 and report.images_checked == 6


@pytest.mark.parametrize("kind, expected", [
    ("undecodable", "record 'i1' does not decode"),
    ("wrong_shape", "record 'i1' does not decode"),
    ("wrong_key", "record 'i1' holds image_id 'i2'"),
    ("bad_kind", "record 'i1'"),
    ("empty_caption", "record 'i1': caption 0 has empty text"),
    ("duplicate_caption", "record 'i1': caption 1 is a duplicate"),
    ("size_mismatch", "record 'i1': recorded size 8x8 but the image is 4x4"),
    ("broken_image", "record 'i1': image is"),
    ("counts", "stored counts"),
    ("split_index_missing", "record 'i1' (split 'train') is missing from the split index"),
    ("split_index_wrong_split", "names image id 'i0' whose record is in split 'val'"),
])
def test_each_kind_of_damage_is_reported(store_path, kind, expected):
    def fn(txn):
        rec = raw_record(txn, "i1")
        if kind == "undecodable":
            txn.put(b"rec/i1", b"\xc1\xc1 not msgpack")
            return
        if kind == "wrong_shape":
            rec = rec[:-1]
        elif kind == "wrong_key":
            rec[F["image_id"]] = "i2"
        elif kind == "bad_kind":
            rec[F["captions"]][0][KIND] = "poem"
        elif kind == "empty_caption":
            rec[F["captions"]][0][TEXT] = "   "
        elif kind == "duplicate_caption":
            rec[F["captions"]].append(list(rec[F["captions"]][0]))
        elif kind == "size_mismatch":
            rec[F["image_bytes"]] = png((4, 4))
        elif kind == "broken_image":
            rec[F["image_bytes"]] = png()[:30]
        elif kind == "counts":
            counts = json.loads(txn.get(b"meta/counts"))
            counts["captions"] += 1
            txn.put(b"meta/counts", json.dumps(counts).encode())
            return
        elif kind == "split_index_missing":
            cursor = txn.cursor()
            for key, value in list(cursor.iternext()):
                if key.startswith(b"split/") and value == b"i1":
                    txn.delete(key)
            return
        elif kind == "split_index_wrong_split":
            cursor = txn.cursor()
            for key, value in list(cursor.iternext()):
                if key.startswith(b"split/train") and value == b"i1":
                    txn.put(key, b"i0")
            return
        txn.put(b"rec/i1", msgpack.packb(rec, use_bin_type=True))

    damage(store_path, fn)
    report = verify_store(CaptionStore(store_path))
    assert not report.ok
    assert any(expected in line for line in report.problems), report.problems


def test_skip_images_does_not_decode(store_path):
    def fn(txn):
        rec = raw_record(txn, "i1")
        rec[F["image_bytes"]] = b"garbage"
        txn.put(b"rec/i1", msgpack.packb(rec, use_bin_type=True))

    damage(store_path, fn)
    assert verify_store(CaptionStore(store_path), check_images=False).ok
    assert not verify_store(CaptionStore(store_path)).ok


def test_an_empty_generation_is_not_damage(store_path):
    """Generated captions may be empty ("" for an empty generation or a critic-rewrite that dropped every
    sentence); verify accepts them when their provenance names the generator, and still reports any other."""
    from vlforge.common.lm.generated_store import generated_caption

    with CaptionStore(store_path, readonly=False) as store:
        store.append_captions({"i1": [generated_caption("", "gt+critic", "short", {"original_source": "gt"},
                                                        "vlforge-critic 0")]})
    assert verify_store(CaptionStore(store_path)).ok
    with CaptionStore(store_path, readonly=False) as store:
        store.append_captions({"i2": [Caption("", "typed", "short", provenance={"note": "no generator"})]})
    report = verify_store(CaptionStore(store_path))
    assert report.problems == ["record 'i2': caption 1 has empty text"]
