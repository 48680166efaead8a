"""Each ingest format on small files written here in exactly that format's on-disk layout, into a real store.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
from PIL import Image

from vlforge.common.errors import VLForgeError
from vlforge.common.ingest import ingest
from vlforge.common.store import CaptionStore


def image_bytes(fmt: str = "JPEG", size=(24, 16), colour=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, fmt)
    return buf.getvalue()


def write_image(path: Path, fmt: str = "JPEG", size=(24, 16), colour=(200, 30, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(image_bytes(fmt, size, colour))


def new_store(tmp_path: Path) -> CaptionStore:
    return CaptionStore.create(tmp_path / "store")


def texts(store: CaptionStore, image_id: str) -> list[str]:
    return [c.text for c in store.get(image_id).captions]


def test_coco_captions_json(tmp_path):
    images = tmp_path / "val2017"
    write_image(images / "000000000139.jpg", size=(32, 24))
    write_image(images / "000000000285.jpg", size=(20, 40))
    doc = {"info": {"description": "COCO 2017 Dataset", "version": "1.0", "year": 2017}, "licenses": [],
           "images": [{"license": 2, "file_name": "000000000139.jpg", "coco_url": "http://x/139.jpg",
                       "height": 24, "width": 32, "date_captured": "2013-11-21 01:34:01",
                       "flickr_url": "http://y", "id": 139},
                      {"license": 1, "file_name": "000000000285.jpg", "coco_url": "http://x/285.jpg",
                       "height": 40, "width": 20, "date_captured": "2013-11-18 22:21:15",
                       "flickr_url": "http://y", "id": 285}],
           "annotations": [{"image_id": 139, "id": 1, "caption": "A woman stands in the dining area."},
                           {"image_id": 285, "id": 2, "caption": "A big brown bear standing in the grass.\n"},
                           {"image_id": 139, "id": 3,
                            "caption": "A room with chairs, a table, and a woman."}]}
    ann = tmp_path / "annotations" / "captions_val2017.json"
    ann.parent.mkdir()
    ann.write_text(json.dumps(doc))
    store = new_store(tmp_path)
    summary = ingest(store, "coco", ann, images)
    assert (summary.added, summary.captions_added, summary.skipped) == (2, 3, {})
    assert store.ids() == ["139", "285"]
    rec = store.get("285")
    assert (rec.split, rec.width, rec.height) == ("val", 20, 40)
    assert (rec.image_path, rec.image_bytes) == ("000000000285.jpg", None)
    assert texts(store, "139") == ["A woman stands in the dining area.",
                                   "A room with chairs, a table, and a woman."]
    assert texts(store, "285") == ["A big brown bear standing in the grass."]
    assert {(c.source, c.kind) for c in rec.captions} == {("gt", "free")}
    assert store.info["image_root"] == str(images.resolve())
    assert store.load_image(rec).size == (20, 40)


def test_karpathy_coco_and_flickr_files(tmp_path):
    images = tmp_path / "coco"
    write_image(images / "val2014" / "COCO_val2014_000000391895.jpg")
    write_image(images / "train2014" / "COCO_train2014_000000522418.jpg")
    doc = {"dataset": "coco", "images": [
        {"filepath": "val2014", "sentids": [770337, 771687], "filename": "COCO_val2014_000000391895.jpg",
         "imgid": 0, "split": "test", "cocoid": 391895,
         "sentences": [{"tokens": ["a", "man"], "raw": "A man with a red helmet on a small moped.",
                        "imgid": 0, "sentid": 770337},
                       {"tokens": ["man"], "raw": "Man riding a motor bike on a dirt road.", "imgid": 0,
                        "sentid": 771687}]},
        {"filepath": "train2014", "sentids": [1], "filename": "COCO_train2014_000000522418.jpg", "imgid": 1,
         "split": "restval", "cocoid": 522418,
         "sentences": [{"tokens": ["a"], "raw": "A woman wearing a net on her head.", "imgid": 1,
                        "sentid": 1}]}]}
    ann = tmp_path / "dataset_coco.json"
    ann.write_text(json.dumps(doc))
    store = new_store(tmp_path)
    assert ingest(store, "karpathy", ann, images).added == 2
    assert store.counts()["splits"] == {"test": 1, "restval": 1}
    rec = store.get("391895")
    assert rec.image_path == "val2014/COCO_val2014_000000391895.jpg"
    assert texts(store, "391895") == ["A man with a red helmet on a small moped.",
                                      "Man riding a motor bike on a dirt road."]

    flickr_images = tmp_path / "flickr30k-images"
    write_image(flickr_images / "1000092795.jpg", fmt="JPEG", size=(30, 20))
    flickr = {"dataset": "flickr30k", "images": [
        {"sentids": [0], "imgid": 0, "split": "train", "filename": "1000092795.jpg",
         "sentences": [{"tokens": ["two"], "raw": "Two young guys with shaggy hair look at their hands.",
                        "imgid": 0, "sentid": 0}]}]}
    flickr_ann = tmp_path / "dataset_flickr30k.json"
    flickr_ann.write_text(json.dumps(flickr))
    other = CaptionStore.create(tmp_path / "flickr_store")
    assert ingest(other, "karpathy", flickr_ann, flickr_images, split="all").added == 1
    rec = other.get("1000092795")
    assert (rec.split, rec.image_path, rec.width, rec.height) == ("all", "1000092795.jpg", 30, 20)


def test_coco_and_karpathy_merge_into_one_record_per_image(tmp_path):
    images = tmp_path / "coco"
    write_image(images / "val2014" / "COCO_val2014_000000000042.jpg")
    coco = {"images": [{"id": 42, "file_name": "val2014/COCO_val2014_000000000042.jpg"}],
            "annotations": [{"image_id": 42, "id": 1, "caption": "a dog"}]}
    karpathy = {"images": [{"filepath": "val2014", "filename": "COCO_val2014_000000000042.jpg",
                            "split": "val", "cocoid": 42,
                            "sentences": [{"raw": "a dog"}, {"raw": "a brown dog"}]}]}
    (tmp_path / "captions_val2014.json").write_text(json.dumps(coco))
    (tmp_path / "dataset_coco.json").write_text(json.dumps(karpathy))
    store = new_store(tmp_path)
    ingest(store, "coco", tmp_path / "captions_val2014.json", images)
    summary = ingest(store, "karpathy", tmp_path / "dataset_coco.json", images)
    assert (summary.added, summary.merged, summary.captions_added) == (0, 1, 1)
    assert store.ids() == ["42"] and texts(store, "42") == ["a dog", "a brown dog"]


def write_img2dataset_folder(images: Path, downloaded: dict[int, str]) -> None:
    """img2dataset's files output: <shard>/<key>.jpg with <key>.txt and <key>.json; 4 samples a shard here."""
    for key, caption in downloaded.items():
        shard = images / f"{key // 4:05d}"
        write_image(shard / f"{key:09d}.jpg", size=(16 + key, 16))
        (shard / f"{key:09d}.txt").write_text(caption)
        sidecar = {"key": f"{key:09d}", "caption": caption, "status": "success", "url": f"http://x/{key}.jpg"}
        (shard / f"{key:09d}.json").write_text(json.dumps(sidecar))


CC3M_ROWS = ["a very typical bus station", "sierra looked stunning in this top and this skirt",
             "actor arrives at the premiere", "the siblings at the beach", "person , the woman in the photo",
             "a worker helps to clear the debris"]


def test_cc3m_tsv_with_img2dataset_folder(tmp_path):
    tsv = tmp_path / "Validation_GCC-1.1.0-Validation.tsv"
    tsv.write_text("".join(f"{c}\thttp://example.com/{i}.jpg\n" for i, c in enumerate(CC3M_ROWS)))
    images = tmp_path / "cc3m"
    write_img2dataset_folder(images, {0: CC3M_ROWS[0], 1: CC3M_ROWS[1], 4: CC3M_ROWS[4], 5: CC3M_ROWS[5]})
    store = new_store(tmp_path)
    summary = ingest(store, "cc3m", tsv, images)
    assert (summary.read, summary.added, dict(summary.skipped)) == (6, 4, {"missing_image": 2})
    assert store.ids() == ["000000000", "000000001", "000000004", "000000005"]
    rec = store.get("000000005")
    assert rec.image_path == "00001/000000005.jpg" and (rec.width, rec.height) == (21, 16)
    assert rec.meta == {"url": "http://example.com/5.jpg"}
    assert [(c.text, c.source, c.kind) for c in rec.captions] == [(CC3M_ROWS[5], "alt_text", "free")]


def test_cc3m_tsv_with_header_row_and_column_order(tmp_path):
    tsv = tmp_path / "cc3m.tsv"
    rows = "".join(f"http://e.com/{i}.jpg\t{c}\n" for i, c in enumerate(CC3M_ROWS[:3]))
    tsv.write_text("url\tcaption\n" + rows)
    images = tmp_path / "cc3m"
    write_img2dataset_folder(images, {0: CC3M_ROWS[0], 2: CC3M_ROWS[2]})
    store = new_store(tmp_path)
    assert ingest(store, "cc3m", tsv, images).added == 2
    assert texts(store, "000000002") == [CC3M_ROWS[2]]


def test_llava_json(tmp_path):
    write_image(tmp_path / "images" / "00453" / "004539375.jpg")
    write_image(tmp_path / "images" / "coco" / "train2017" / "000000033471.jpg", fmt="PNG", size=(10, 12))
    data = [
        {"id": "004539375", "image": "00453/004539375.jpg", "conversations": [
            {"from": "human", "value": "Render a clear and concise summary of the photo.\n<image>"},
            {"from": "gpt", "value": "select luxury furniture 3 - inch gel memory foam mattress topper"}]},
        {"id": "000000033471", "image": "coco/train2017/000000033471.jpg", "conversations": [
            {"from": "human", "value": "<image>\nWhat are the colors of the bus in the image?"},
            {"from": "gpt", "value": "The bus in the image is white and red."},
            {"from": "human", "value": "What feature can be seen on the back of the bus?"},
            {"from": "gpt", "value": "The back of the bus features an advertisement."}]},
        {"id": "000000033471-2", "image": "coco/train2017/000000033471.jpg", "conversations": [
            {"from": "human", "value": "<image>\nDescribe the image."},
            {"from": "gpt", "value": "A white and red bus on a street."}]},
        {"id": "text-only-1", "conversations": [{"from": "human", "value": "hi"},
                                                {"from": "gpt", "value": "hello"}]},
    ]
    ann = tmp_path / "images" / "llava_pretrain.json"
    ann.write_text(json.dumps(data))
    store = new_store(tmp_path)
    summary = ingest(store, "llava", ann)  # --images defaults to the JSON file's folder
    assert (summary.added, summary.merged, summary.duplicates) == (2, 1, 1)
    assert dict(summary.skipped) == {"missing_image": 1}
    assert texts(store, "coco/train2017/000000033471.jpg") == ["The bus in the image is white and red.",
                                                               "A white and red bus on a street."]
    assert texts(store, "00453/004539375.jpg") == [
        "select luxury furniture 3 - inch gel memory foam mattress topper"]
    rec = store.get("coco/train2017/000000033471.jpg")
    assert (rec.width, rec.height, rec.captions[0].source) == (10, 12, "gt")


def test_jsonl_relative_paths_string_and_list_captions(tmp_path):
    write_image(tmp_path / "data" / "imgs" / "a.jpg")
    write_image(tmp_path / "data" / "imgs" / "b.png", fmt="PNG", size=(8, 9))
    lines = [{"image": "imgs/a.jpg", "caption": "a red square"},
             {"image": "imgs/b.png", "caption": ["first caption", "second caption", "first caption"],
              "id": "bee"}]
    ann = tmp_path / "data" / "pairs.jsonl"
    ann.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    store = new_store(tmp_path)
    summary = ingest(store, "jsonl", ann, source="web", split="val")
    assert (summary.read, summary.added, summary.captions_added) == (2, 2, 3)
    assert store.ids() == ["bee", "imgs/a.jpg"]
    assert texts(store, "bee") == ["first caption", "second caption"]
    rec = store.get("bee")
    assert (rec.split, rec.image_path, rec.captions[0].source) == ("val", "imgs/b.png", "web")


def test_jsonl_embed_images_stores_the_encoded_bytes(tmp_path):
    write_image(tmp_path / "a.png", fmt="PNG", size=(7, 5), colour=(1, 2, 3))
    (tmp_path / "d.jsonl").write_text(json.dumps({"image": "a.png", "caption": "tiny"}) + "\n")
    store = new_store(tmp_path)
    ingest(store, "jsonl", tmp_path / "d.jsonl", embed_images=True)
    rec = store.get("a.png")
    assert rec.image_path is None and rec.image_bytes == (tmp_path / "a.png").read_bytes()
    assert store.load_image(rec).getpixel((0, 0)) == (1, 2, 3)
    assert store.info.get("image_root") is None


def test_images_under_the_stored_root_keep_paths_relative_to_it(tmp_path):
    write_image(tmp_path / "root" / "part1" / "a.jpg")
    write_image(tmp_path / "root" / "part2" / "b.jpg")
    for part, name in (("part1", "a.jpg"), ("part2", "b.jpg")):
        (tmp_path / f"{part}.jsonl").write_text(json.dumps({"image": name, "caption": part}) + "\n")
    store = CaptionStore.create(tmp_path / "store", image_root=tmp_path / "root")
    ingest(store, "jsonl", tmp_path / "part1.jsonl", tmp_path / "root" / "part1")
    ingest(store, "jsonl", tmp_path / "part2.jsonl", tmp_path / "root" / "part2")
    assert store.get("a.jpg").image_path == "part1/a.jpg" and store.get("b.jpg").image_path == "part2/b.jpg"
    with pytest.raises(VLForgeError, match="cannot change"):  # re-rooting would point part1/a.jpg elsewhere
        store.set_info(image_root=str(tmp_path / "root" / "part1"))
    elsewhere = tmp_path / "elsewhere"
    write_image(elsewhere / "c.jpg")
    with pytest.raises(VLForgeError, match="outside it"):
        ingest(store, "jsonl", tmp_path / "part1.jsonl", elsewhere)


def write_shard(path: Path, members: list[tuple[str, bytes]]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_webdataset_shards_by_glob(tmp_path):
    shards = tmp_path / "shards"
    shards.mkdir()
    write_shard(shards / "00000.tar", [
        ("000000000.jpg", image_bytes(size=(11, 7))), ("000000000.txt", b"a cat on a mat"),
        ("000000000.json", json.dumps({"caption": "a cat on a mat", "url": "http://x"}).encode()),
        ("000000001.png", image_bytes("PNG", (5, 6))),
        ("000000001.json", json.dumps({"caption": "only json"}).encode()),
    ])
    write_shard(shards / "00001.tar", [
        ("sub/000000002.jpg", image_bytes()), ("sub/000000002.txt", "  café sign \n".encode()),
        ("000000003.txt", b"no image here"),
    ])
    store = new_store(tmp_path)
    summary = ingest(store, "webdataset", str(shards / "*.tar"))
    assert (summary.read, summary.added, dict(summary.skipped)) == (4, 3, {"missing_image": 1})
    assert store.ids() == ["000000000", "000000001", "sub/000000002"]
    rec = store.get("000000001")
    assert rec.image_path is None and rec.image_bytes == image_bytes("PNG", (5, 6))
    assert (rec.width, rec.height) == (5, 6)
    assert texts(store, "sub/000000002") == ["café sign"]
    assert (rec.split, [c.source for c in rec.captions]) == ("train", ["alt_text"])
