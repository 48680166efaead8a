"""CaptionStore on a real LMDB: every field round-trips, merges are idempotent, counts stay exact, iteration order."""

import io
import pickle

import pytest
from PIL import Image

from vlforge.common.errors import VLForgeError
from vlforge.common.records import CAPTION_KINDS, Caption, ImageRecord
from vlforge.common.store import CaptionDataset, CaptionStore, collate_image_records


def png(color=(200, 10, 10), size=(6, 4)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def rich_record(image_id="img-1") -> ImageRecord:
    captions = [Caption(text=f"{kind} caption of {image_id}", source="gt" if i % 2 else "capt-7b", kind=kind,
                        provenance={"model": "m", "prompt": "describe", "decoding": {"temperature": 0.7, "top_p": 0.9},
                                    "time": "2024-01-01T00:00:00Z"},
                        scores={"clip_score": 0.31, "critic": [True, False], "chair": {"hallucinated": ["dog"]}})
                for i, kind in enumerate(CAPTION_KINDS)]
    return ImageRecord(image_id=image_id, split="seed", width=6, height=4, captions=captions, image_bytes=png(),
                       meta={"scene_graph": {"objects": [{"shape": "circle", "colour": "red", "xy": [1.5, 2]}],
                                             "relations": [["o0", "left of", "o1"]]},
                             "qa": [{"q": "how many?", "a": 1}], "unicode": "ünï ✓", "none": None, "flag": True})


def test_every_field_round_trips_through_lmdb(tmp_path):
    store = CaptionStore.create(tmp_path / "s", info={"made_by": "test"})
    embedded = rich_record("img-ü/1")
    by_path = ImageRecord(image_id="p2", split="val", width=640, height=480, image_path="sub/dir/p2.jpg",
                          captions=[Caption("a photo", "alt_text")], meta={})
    store.put_records([embedded, by_path])
    store.close()

    reader = CaptionStore(tmp_path / "s")
    assert reader.get("img-ü/1") == embedded
    assert reader.get("p2") == by_path
    assert reader.get("img-ü/1").image_bytes == png()
    info = reader.info
    assert info["schema_version"] == 1 and info["made_by"] == "test" and info["created"]
    assert reader.load_image(reader.get("img-ü/1")).getpixel((0, 0)) == (200, 10, 10)


def test_put_is_idempotent_and_merges_captions_and_meta(tmp_path):
    store = CaptionStore.create(tmp_path / "s")
    first = ImageRecord("a", "train", 6, 4, [Caption("one", "gt", "short"), Caption("one", "gt", "short")],
                        image_bytes=png(), meta={"k": 1})
    result = store.put_records([first])
    assert (result.added, result.merged, result.captions_added) == (1, 0, 1)
    again = store.put_records([first])
    assert (again.added, again.merged, again.captions_added) == (0, 1, 0)

    more = ImageRecord("a", "test", 6, 4, [Caption("one", "gt", "short"), Caption("two", "gt", "dense")],
                       image_bytes=png(), meta={"j": 2})
    merged = store.put_records([more])
    assert (merged.merged, merged.captions_added, merged.split_conflicts) == (1, 1, 1)
    other_image = ImageRecord("a", "train", 6, 4, [Caption("a blue one", "gt", "short")], image_bytes=png((0, 0, 255)))
    refused = store.put_records([other_image])  # the same id for a different image is never merged onto it
    assert (refused.merged, refused.image_conflicts, refused.conflict_ids) == (0, 1, ["a"])
    record = store.get("a")
    assert [c.text for c in record.captions] == ["one", "two"]
    assert record.split == "train"  # the stored split is kept
    assert record.image_bytes == png()  # and the stored image
    assert record.meta == {"k": 1, "j": 2}
    assert store.counts() == {"images": 1, "captions": 2, "splits": {"train": 1},
                              "by_source": {"gt": 2}, "by_kind": {"short": 1, "dense": 1}}
    assert len(store) == 1 and "a" in store and "b" not in store


def test_append_captions_is_one_idempotent_transaction(tmp_path):
    store = CaptionStore.create(tmp_path / "s")
    store.put_records([ImageRecord(i, "train", 6, 4, [Caption("x", "gt")], image_bytes=png()) for i in "abc"])
    added = store.append_captions({"a": [Caption("new", "capt", "dense")], "b": [Caption("x", "gt"),
                                                                                  Caption("y", "capt")]})
    assert added == 2
    assert store.append_captions({"a": [Caption("new", "capt", "dense")]}) == 0
    assert [c.text for c in store.get("b").captions] == ["x", "y"]
    assert store.counts()["by_source"] == {"gt": 3, "capt": 2}
    assert store.counts()["captions"] == 5


def test_iteration_is_sorted_and_filters_by_split_and_source(tmp_path):
    store = CaptionStore.create(tmp_path / "s")
    ids = [f"id{n:03d}" for n in (5, 1, 9, 3, 7, 0)]
    store.put_records([ImageRecord(i, "val" if i in ("id005", "id000") else "train", 6, 4,
                                   [Caption("c", "alt_text" if i == "id009" else "gt")], image_bytes=png())
                       for i in ids], batch_size=2)
    assert store.ids() == sorted(ids)
    assert store.ids("val") == ["id000", "id005"]
    assert [r.image_id for r in store.iter_records()] == sorted(ids)
    assert [r.image_id for r in store.iter_records(split="train", source="alt_text")] == ["id009"]
    assert store.counts()["splits"] == {"train": 4, "val": 2}


def test_info_updates_and_schema_version_is_protected(tmp_path):
    store = CaptionStore.create(tmp_path / "s", image_root=tmp_path / "imgs")
    assert store.info["image_root"] == str(tmp_path / "imgs")
    store.set_info(note="hello")
    assert CaptionStore(tmp_path / "s").info["note"] == "hello"
    with pytest.raises(VLForgeError, match="schema_version"):
        store.set_info(schema_version=2)


def test_dataset_over_split_and_all_splits_yields_images_and_records(tmp_path):
    store = CaptionStore.create(tmp_path / "s")
    colours = {"a": (255, 0, 0), "b": (0, 255, 0), "c": (0, 0, 255)}
    store.put_records([ImageRecord(i, "val" if i == "b" else "train", 6, 4, [Caption(i, "gt")],
                                   image_bytes=png(colours[i])) for i in "abc"])
    val = CaptionDataset(tmp_path / "s", split="val")
    assert len(val) == 1
    image, record = val[0]
    assert record.image_id == "b" and image.mode == "RGB" and image.getpixel((1, 1)) == (0, 255, 0)
    everything = CaptionDataset(store, transform=lambda im: im.getpixel((0, 0)))
    assert sorted(everything[i][1].image_id for i in range(len(everything))) == ["a", "b", "c"]
    assert all(everything[i][0] == colours[everything[i][1].image_id] for i in range(3))
    with pytest.raises(IndexError):
        everything[3]
    with pytest.raises(VLForgeError, match="split 'nope'"):
        CaptionDataset(store, split="nope")
    images, records = collate_image_records([everything[0], everything[1]])
    assert len(images) == 2 and [r.image_id for r in records] == [everything[0][1].image_id,
                                                                   everything[1][1].image_id]


def test_store_and_dataset_pickle_without_the_environment(tmp_path):
    store = CaptionStore.create(tmp_path / "s")
    store.put_records([ImageRecord("a", "train", 6, 4, [Caption("x", "gt")], image_bytes=png())])
    blob = pickle.dumps(CaptionDataset(store))
    assert b"Environment" not in blob
    copy = pickle.loads(blob)
    assert copy[0][1].image_id == "a"


def test_a_reader_and_a_writer_share_one_environment_in_a_process(tmp_path):
    writer = CaptionStore.create(tmp_path / "s")
    reader = CaptionStore(tmp_path / "s", readonly=True)
    writer.put_records([ImageRecord("a", "train", 6, 4, [Caption("x", "gt")], image_bytes=png())])
    assert reader.get("a").captions[0].text == "x"
    with pytest.raises(VLForgeError, match="read-only"):
        reader.append_captions({"a": [Caption("y", "gt")]})
    writer.close()
    assert len(reader) == 1


def test_lock_free_reader_of_a_finished_store(tmp_path):
    writer = CaptionStore.create(tmp_path / "s")
    writer.put_records([ImageRecord("a", "train", 6, 4, [Caption("x", "gt")], image_bytes=png())])
    writer.close()
    reader = CaptionStore(tmp_path / "s", readonly=True, lock=False)
    assert reader.get("a").captions[0].text == "x" and reader.counts()["images"] == 1
