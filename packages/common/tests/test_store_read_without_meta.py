"""Reading records without their ``meta`` (CaptionDataset(meta=False), get_at(meta=False)) on a real LMDB: every
other field as stored, damage still a one-line error, and such a record cannot be written back."""

import dataclasses
import io

import msgpack
import pytest
from PIL import Image

from vlforge.common.errors import VLForgeError
from vlforge.common.records import Caption, ImageRecord
from vlforge.common.store import CaptionDataset, CaptionStore, codec


def rich_record(image_id: str) -> ImageRecord:
    buffer = io.BytesIO()
    Image.new("RGB", (6, 4), (200, 10, 10)).save(buffer, "PNG")
    captions = [Caption(f"{kind} caption of {image_id}", source, kind,
                        provenance={"model": "m", "decoding": {"temperature": 0.7, "top_p": 0.9}},
                        scores={"clip_score": 0.31, "chair": {"hallucinated": ["dog"]}})
                for kind, source in (("short", "gt"), ("dense", "capt-7b"), ("negative", "gt"))]
    return ImageRecord(image_id, "seed", 6, 4, captions, image_bytes=buffer.getvalue(),
                       meta={"scene_graph": {"objects": [{"shape": "circle", "xy": [1.5, 2]}]},
                             "qa": [{"q": "how many?", "a": 1}], "unicode": "ünï ✓", "none": None})


def _store(tmp_path) -> CaptionStore:
    store = CaptionStore.create(tmp_path / "s")
    store.put_records([rich_record(f"img-{i}") for i in range(3)])
    return store


def test_records_without_meta_hold_every_other_field_as_stored(tmp_path):
    store = _store(tmp_path)
    full, light = CaptionDataset(store, split="seed"), CaptionDataset(store, split="seed", meta=False)
    for index in range(len(full)):
        record, without = full.record(index), light.record(index)
        assert record.meta and without.meta is None
        assert dataclasses.replace(without, meta=record.meta) == record
        assert without.captions[0].provenance["decoding"] == {"temperature": 0.7, "top_p": 0.9}
    image, record = light[1]
    assert image.getpixel((0, 0)) == (200, 10, 10) and record.image_id == "img-1"
    assert store.get_at("seed", 2, meta=False).meta is None and store.get_at("seed", 2).meta == full.record(2).meta


@pytest.mark.parametrize("raw", [
    msgpack.packb({"image_id": "x"}),  # a map, not the record array
    msgpack.packb(["x", "seed", 6, 4, []]),  # too few fields
    codec.encode_record(rich_record("x"))[:-7],  # truncated inside meta
    codec.encode_record(dataclasses.replace(rich_record("x"), captions=[]))[:30],  # truncated before meta
])
def test_damaged_records_are_a_one_line_error_without_meta_too(raw):
    with pytest.raises(VLForgeError, match=r"^record 'x' does not decode") as err:
        codec.decode_record(raw, b"rec/x", meta=False)
    assert "\n" not in str(err.value)


def test_a_record_read_without_meta_is_refused_by_put_records(tmp_path):
    store = _store(tmp_path)
    without = store.get_at("seed", 0, meta=False)
    without.captions.append(Caption("one more", "gt", "short"))
    with pytest.raises(VLForgeError, match="meta must be a dict"):
        store.put_records([without])
    assert store.get("img-0") == rich_record("img-0")  # nothing stored was lost
    with pytest.raises(VLForgeError, match="meta must be a dict"):
        store.put_records([ImageRecord("y", "seed", 1, 1, image_path="y.png", meta=None)])
