"""vlforge-store export: every format read back by the library that consumes it (vlforge's own ingest, open_clip's
CsvDataset and WebDataset pipeline, webdataset.WebDataset, pyarrow), the filters, and the negatives trap."""

from __future__ import annotations

import io
import json
from argparse import Namespace

import pytest
import torch
from PIL import Image

from vlforge.common.records import Caption, ImageRecord
from vlforge.common.shapes.build import build_shapes_store
from vlforge.common.store import CaptionStore
from vlforge.common.store_cli import main


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def png(color, size=(8, 6)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    path = tmp_path_factory.mktemp("shapes") / "store"
    build_shapes_store(path, 16, seed=3, image_size=32, workers=1)
    return path


@pytest.fixture
def path_store(tmp_path):
    """Path images under a root, one embedded image, scores and provenance, a two-caption image."""
    (tmp_path / "imgs" / "sub").mkdir(parents=True)
    (tmp_path / "imgs" / "sub" / "a.jpg").write_bytes(_jpeg((200, 10, 10)))
    store = CaptionStore.create(tmp_path / "P", image_root=tmp_path / "imgs")
    store.put_records([
        ImageRecord("coco/1", "train", 8, 6, [Caption("a red square", "gt", "short", {"model": "m", "t": 0.7},
                                                      {"clip_score": 0.25, "chair": [False]}),
                                              Caption("a false caption", "gt", "negative")],
                    image_path="sub/a.jpg", meta={"url": "http://x/1.jpg", "status": "success"}),
        ImageRecord("2", "val", 8, 6, [Caption("green", "capt-x", "dense")], image_bytes=png((0, 255, 0)))])
    store.close()
    return tmp_path / "P"


def _jpeg(color) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 6), color).save(buf, "JPEG")
    return buf.getvalue()


def _records(path) -> dict:
    with CaptionStore(path) as store:
        return {r.image_id: (r.split, r.width, r.height, [c.to_dict() for c in r.captions], r.meta,
                             list(store.load_image(r).getdata())) for r in store.iter_records()}


@pytest.mark.parametrize("embed", [False, True])
def test_jsonl_round_trip_is_lossless(capsys, tmp_path, shapes, path_store, embed):
    for name, store in (("shapes", shapes), ("paths", path_store)):
        first, second = tmp_path / f"{name}1" / "x.jsonl", tmp_path / f"{name}2" / "x.jsonl"
        flags = ["--embed-images"] if embed else []
        assert run(capsys, "export", store, "--format", "jsonl", "--out", first, *flags)[0] == 0
        code, out, _ = run(capsys, "ingest", tmp_path / f"{name}_back", "--format", "jsonl", "--annotations", first)
        assert code == 0 and "records skipped:   0" in out and "captions dropped:  0" in out
        assert run(capsys, "export", tmp_path / f"{name}_back", "--format", "jsonl", "--out", second, *flags)[0] == 0
        assert first.read_text() == second.read_text()
        assert _records(tmp_path / f"{name}_back") == _records(store)  # ids, splits, captions, meta, pixels
    line = json.loads(first.read_text().splitlines()[1])
    assert line["id"] == "coco/1" and line["meta"] == {"url": "http://x/1.jpg", "status": "success"}
    assert line["captions"][0]["scores"] == {"clip_score": 0.25, "chair": [False]}
    assert ("image_base64" in line) == embed and ("image" in line) != embed


def test_caption_formats_leave_out_negatives_and_queries(capsys, tmp_path, shapes):
    with CaptionStore(shapes) as store:
        counts = store.counts()["by_kind"]
        false_texts = {c.text for r in store.iter_records() for c in r.captions if c.kind in ("negative", "query")}
    code, out, _ = run(capsys, "export", shapes, "--format", "tsv", "--out", tmp_path / "t.tsv")
    assert code == 0
    assert f"left out captions: {counts['negative']} negative, {counts['query']} query" in out
    import pandas as pd

    titles = set(pd.read_csv(tmp_path / "t.tsv", sep="\t")["title"])
    assert titles and not titles & false_texts
    code, _, _ = run(capsys, "export", shapes, "--format", "tsv", "--out", tmp_path / "n.tsv", "--kind", "negative")
    negatives = pd.read_csv(tmp_path / "n.tsv", sep="\t")
    assert code == 0 and set(negatives["kind"]) == {"negative"} and len(negatives) == counts["negative"]


def test_filters_source_kind_split(capsys, tmp_path, shapes):
    out = tmp_path / "f.jsonl"
    assert run(capsys, "export", shapes, "--format", "jsonl", "--out", out, "--source", "gt", "--kind", "short",
               "--kind", "dense", "--split", "pool")[0] == 0
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    with CaptionStore(shapes) as store:
        assert [x["id"] for x in lines] == store.ids("pool")
    assert {(c["source"], c["kind"]) for x in lines for c in x["captions"]} == {("gt", "short"), ("gt", "dense")}
    assert all(len(x["captions"]) == 2 for x in lines)
    code, _, err = run(capsys, "export", shapes, "--format", "jsonl", "--out", out, "--kind", "bogus")
    assert code == 2 and "'bogus'" in err
    code, _, err = run(capsys, "export", shapes, "--format", "jsonl", "--out", out, "--split", "trian")
    assert code == 2 and "split 'trian' has no images" in err and len(err.strip().splitlines()) == 1


def test_open_clip_csv_dataset_reads_the_csv(capsys, tmp_path, path_store):
    import open_clip
    from open_clip_train.data import CsvDataset

    out = tmp_path / "oc" / "train.csv"
    assert run(capsys, "export", path_store, "--format", "csv", "--out", out)[0] == 0
    preprocess = open_clip.image_transform(16, is_train=False)
    dataset = CsvDataset(str(out), preprocess, img_key="filepath", caption_key="title", sep=",",
                         tokenizer=open_clip.get_tokenizer("RN50"))
    assert len(dataset) == 2  # the negative is left out
    image, tokens = dataset[0]
    assert image.shape == (3, 16, 16) and tokens.shape == (77,)
    assert dataset.captions == ["green", "a red square"]  # sorted id order: "2" < "coco/1"
    assert Image.open(dataset.images[0]).convert("RGB").getpixel((0, 0)) == (0, 255, 0)


def _pattern(out: str) -> str:
    return out.strip().rsplit(": ", 1)[1]


def test_webdataset_shards_load_with_webdataset_and_open_clip(capsys, tmp_path, shapes):
    import open_clip
    import webdataset as wds
    from open_clip_train.data import get_wds_dataset

    code, out, _ = run(capsys, "export", shapes, "--format", "webdataset", "--out", tmp_path / "wds",
                       "--source", "gt", "--kind", "short", "--samples-per-shard", "5")
    assert code == 0
    pattern = _pattern(out.splitlines()[-1])
    assert pattern == str(tmp_path / "wds" / "shard-{000000..000003}.tar")  # 16 samples, 5 per shard
    with CaptionStore(shapes) as store:
        expected = {r.image_id: r.captions_by("gt", "short")[0].text for r in store.iter_records()}
    samples = list(wds.WebDataset(pattern, shardshuffle=False).decode("pil"))
    assert {s["json"]["image_id"]: s["txt"] for s in samples} == expected
    assert samples[0]["png"].size == (32, 32) and samples[0]["json"]["meta"]["scene_graph"]

    args = Namespace(val_data=pattern, val_num_samples=None, batch_size=4, workers=0, world_size=1)
    loader = get_wds_dataset(args, open_clip.image_transform(16, is_train=False), is_train=False,
                             tokenizer=open_clip.get_tokenizer("RN50")).dataloader
    batches = list(loader)
    assert sum(len(images) for images, _ in batches) == 16
    assert batches[0][0].shape == (4, 3, 16, 16) and batches[0][1].shape == (4, 77)
    assert json.loads((tmp_path / "wds" / "sizes.json").read_text())["shard-000003.tar"] == 1


def test_llava_export_reads_back_with_llava_ingest(capsys, tmp_path, shapes):
    out = tmp_path / "llava" / "chat.json"
    assert run(capsys, "export", shapes, "--format", "llava", "--out", out, "--kind", "dense", "--qa")[0] == 0
    entries = json.loads(out.read_text())
    captions = [e for e in entries if not e["id"].endswith("-qa")]
    qa = [e for e in entries if e["id"].endswith("-qa")]
    assert len(captions) == len(qa) == 16
    assert captions[0]["conversations"][0]["value"] == "<image>\nDescribe the image in detail."
    assert qa[0]["conversations"][0]["value"].startswith("<image>\n") and len(qa[0]["conversations"]) % 2 == 0
    caption_file = tmp_path / "llava" / "captions.json"
    caption_file.write_text(json.dumps(captions))
    code, text, _ = run(capsys, "ingest", tmp_path / "back", "--format", "llava", "--annotations", caption_file)
    assert code == 0 and "images added:      16" in text
    with CaptionStore(shapes) as src, CaptionStore(tmp_path / "back") as back:
        dense = sorted(r.captions_by("gt", "dense")[0].text for r in src.iter_records())
        assert sorted(r.captions[0].text for r in back.iter_records()) == dense


def test_parquet_export_reads_with_pyarrow(capsys, tmp_path, shapes):
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "p" / "data.parquet"
    assert run(capsys, "export", shapes, "--format", "parquet", "--out", out, "--split", "pool")[0] == 0
    table = pq.read_table(out)
    with CaptionStore(shapes) as store:
        pool = list(store.iter_records(split="pool"))
        expected = sorted((r.image_id, c.text) for r in pool for c in r.captions
                          if c.kind not in ("negative", "query"))
        first = store.get(table["image_id"][0].as_py())
        first_pixels = list(store.load_image(first).getdata())
    assert sorted(zip(table["image_id"].to_pylist(), table["text"].to_pylist(), strict=True)) == expected
    image = table["image"][0].as_py()
    assert list(Image.open(io.BytesIO(image["bytes"])).convert("RGB").getdata()) == first_pixels
    assert set(table["kind"].to_pylist()) <= {"short", "descriptive", "dense", "free"}


def test_a_training_loop_on_the_default_export_sees_no_negative(capsys, tmp_path, shapes):
    """The trap of issue 18: a user trains on `export --format csv`; no false caption reaches the batches."""
    import open_clip
    from open_clip_train.data import CsvDataset

    with CaptionStore(shapes) as store:
        false_texts = {c.text for r in store.iter_records() for c in r.captions if c.kind in ("negative", "query")}
    tokenizer = open_clip.get_tokenizer("RN50")
    assert run(capsys, "export", shapes, "--format", "csv", "--out", tmp_path / "train.csv")[0] == 0
    dataset = CsvDataset(str(tmp_path / "train.csv"), open_clip.image_transform(16, is_train=False),
                         img_key="filepath", caption_key="title", sep=",", tokenizer=tokenizer)
    seen = [tokens for _, tokens in torch.utils.data.DataLoader(dataset, batch_size=8)]
    trained_on = torch.cat(seen)
    false_tokens = tokenizer(sorted(false_texts))
    assert len(trained_on) == len(dataset) > 0
    assert not (trained_on[:, None, :] == false_tokens[None, :, :]).all(-1).any()


def test_lossless_jsonl_bad_lines_are_skipped_and_counted(capsys, caplog, tmp_path):
    good = {"id": "a", "split": "val", "image_base64": __import__("base64").b64encode(png((1, 2, 3))).decode(),
            "captions": [{"text": "a dot", "source": "gt", "kind": "short", "provenance": {}, "scores": {}}]}
    lines = [good,
             good | {"id": "b", "image_base64": "not base64!!"},
             good | {"id": "c", "captions": [{"text": "x", "source": "gt", "kind": "bogus"}]},
             good | {"id": "d", "captions": [{"text": "x", "source": ""}]},
             good | {"id": "e", "captions": ["plain text is not a caption object"]}]
    annotations = tmp_path / "in.jsonl"
    annotations.write_text("".join(json.dumps(line) + "\n" for line in lines))
    code, out, _ = run(capsys, "ingest", tmp_path / "s", "--format", "jsonl", "--annotations", annotations, "--json")
    summary = json.loads(out)
    assert code == 0 and summary["added"] == 1 and summary["skipped"] == {"malformed_entry": 4}
    assert "line 2 of in.jsonl: skipped (malformed_entry): 'image_base64' is not valid base64" in caplog.text
    with CaptionStore(tmp_path / "s") as store:
        record = store.get("a")
    assert record.split == "val" and record.captions[0].kind == "short" and record.image_bytes == png((1, 2, 3))
