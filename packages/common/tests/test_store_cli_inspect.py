"""vlforge-store stats / show / export / merge / verify through the real entry point, and their JSON."""

import io
import json

import pytest
from PIL import Image

from vlforge.common.records import Caption, ImageRecord
from vlforge.common.store import CaptionStore
from vlforge.common.store_cli import main


def png(color, size=(8, 6)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def two_stores(tmp_path):
    """A: one path image under imgsA, one embedded; B: a path image under imgsB/deep and A's id 1 again (the same
    picture, a copy under imgsB)."""
    (tmp_path / "imgsA" / "sub").mkdir(parents=True)
    (tmp_path / "imgsA" / "sub" / "a.png").write_bytes(png((255, 0, 0)))
    (tmp_path / "imgsB" / "deep").mkdir(parents=True)
    (tmp_path / "imgsB" / "deep" / "b.png").write_bytes(png((0, 0, 255)))
    (tmp_path / "imgsB" / "deep" / "a_copy.png").write_bytes(png((255, 0, 0)))
    a = CaptionStore.create(tmp_path / "A", image_root=tmp_path / "imgsA")
    a.put_records([ImageRecord("1", "train", 8, 6, [Caption("a red square", "gt", "short")], image_path="sub/a.png",
                               meta={"objects": 1}),
                   ImageRecord("2", "val", 8, 6, [Caption("green", "gt", "short"),
                                                  Caption("img 4821 stock photo", "alt_text")],
                               image_bytes=png((0, 255, 0)))])
    a.close()
    b = CaptionStore.create(tmp_path / "B", image_root=tmp_path / "imgsB")
    b.put_records([ImageRecord("3", "train", 8, 6, [Caption("a blue square", "gt", "short")],
                               image_path="deep/b.png"),
                   ImageRecord("1", "test", 8, 6, [Caption("a red square", "gt", "short"),
                                                   Caption("red box", "capt-x", "dense")],
                               image_path="deep/a_copy.png")])
    b.close()
    return tmp_path


def test_stats_json(capsys, two_stores):
    code, out, _ = run(capsys, "stats", two_stores / "A", "--json")
    assert code == 0
    stats = json.loads(out)
    assert stats["images"] == 2 and stats["captions"] == 3
    assert stats["splits"] == {"train": 1, "val": 1}
    assert stats["by_source"] == {"gt": 2, "alt_text": 1}
    code, out, _ = run(capsys, "stats", two_stores / "A")
    assert code == 0 and "2 images, 3 captions" in out


def test_show_json_never_dumps_image_bytes(capsys, two_stores):
    code, out, _ = run(capsys, "show", two_stores / "A", "2", "--json")
    assert code == 0
    shown = json.loads(out)
    assert shown["image_id"] == "2" and shown["split"] == "val"
    assert shown["image_bytes"] == len(png((0, 255, 0)))
    assert [(c["text"], c["source"], c["kind"]) for c in shown["captions"]] == [
        ("green", "gt", "short"), ("img 4821 stock photo", "alt_text", "free")]
    code, out, _ = run(capsys, "show", two_stores / "A", "1")
    assert code == 0 and "[gt/short] a red square" in out and "sub/a.png" in out


def test_export_jsonl_one_line_per_image_with_shows_captions_and_meta(capsys, two_stores, tmp_path):
    out_file = tmp_path / "out" / "a.jsonl"
    code, _, _ = run(capsys, "export", two_stores / "A", "--format", "jsonl", "--out", out_file)
    assert code == 0
    lines = [json.loads(line) for line in out_file.read_text().splitlines()]
    _, shown, _ = run(capsys, "show", two_stores / "A", "2", "--json")
    shown = json.loads(shown)
    assert [line["id"] for line in lines] == ["1", "2"]
    assert {k: lines[1][k] for k in ("split", "width", "height", "captions", "meta")} == {
        k: shown[k] for k in ("split", "width", "height", "captions", "meta")}
    assert (out_file.parent / lines[1]["image"]).read_bytes() == png((0, 255, 0))


def test_stats_breaks_captions_down_by_source_and_kind_with_lengths(capsys, two_stores):
    code, out, _ = run(capsys, "stats", two_stores / "B", "--json")
    stats = json.loads(out)
    assert code == 0 and stats["by_source_kind"] == {"capt-x": {"dense": 1}, "gt": {"short": 2}}
    assert stats["lengths"]["gt"] == {"count": 2, "mean": 3.0, "std": 0.0, "min": 3, "median": 3.0, "p90": 3,
                                      "max": 3}
    code, out, _ = run(capsys, "stats", two_stores / "B")
    assert "source gt" in out and "kind short" in out and "words mean 3.0" in out
    code, out, _ = run(capsys, "stats", two_stores / "B", "--counts-only", "--json")
    assert "by_source_kind" not in json.loads(out)


def test_ids_and_sample(capsys, two_stores):
    assert run(capsys, "ids", two_stores / "A")[1].split() == ["1", "2"]
    assert run(capsys, "ids", two_stores / "A", "--split", "val")[1].split() == ["2"]
    assert run(capsys, "ids", two_stores / "A", "--source", "alt_text")[1].split() == ["2"]
    assert run(capsys, "ids", two_stores / "A", "--limit", "1")[1].split() == ["1"]
    drawn = [run(capsys, "ids", two_stores / "A", "--random", "--limit", "1", "--seed", str(s))[1].split()
             for s in range(8)]
    assert all(len(d) == 1 for d in drawn) and {d[0] for d in drawn} == {"1", "2"}
    assert drawn == [run(capsys, "ids", two_stores / "A", "--random", "--limit", "1", "--seed", str(s))[1].split()
                     for s in range(8)]
    code, out, _ = run(capsys, "sample", two_stores / "A", "-n", "5")
    assert code == 0 and "[gt/short] a red square" in out and "[alt_text/free] img 4821 stock photo" in out
    code, _, err = run(capsys, "ids", two_stores / "A", "--split", "nope")
    assert code == 2 and "'nope'" in err


def test_export_coco_writes_embedded_images_beside_it(capsys, two_stores, tmp_path):
    out_file = tmp_path / "coco" / "caps.json"
    code, _, _ = run(capsys, "export", two_stores / "A", "--format", "coco", "--out", out_file)
    assert code == 0
    coco = json.loads(out_file.read_text())
    images = {im["vlforge_id"]: im for im in coco["images"]}
    assert images["1"]["id"] == 1 and images["1"]["file_name"] == "sub/a.png"
    embedded = tmp_path / "coco" / "caps_images" / images["2"]["file_name"]
    assert Image.open(embedded).convert("RGB").getpixel((0, 0)) == (0, 255, 0)
    by_image = {}
    for ann in coco["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann["caption"])
    assert by_image == {1: ["a red square"], 2: ["green", "img 4821 stock photo"]}
    assert coco["info"]["vlforge_image_root"] == str(two_stores / "imgsA")


def test_merge_reroots_paths_and_deduplicates(capsys, two_stores):
    out = two_stores / "M"
    code, text, _ = run(capsys, "merge", out, two_stores / "A", two_stores / "B")
    assert code == 0 and "1 split conflicts" in text
    merged = CaptionStore(out)
    assert merged.ids() == ["1", "2", "3"]
    one = merged.get("1")
    assert [c.text for c in one.captions] == ["a red square", "red box"]  # deduplicated, B's new caption added
    assert one.split == "train" and one.meta == {"objects": 1}  # the first store's split and image are kept
    assert merged.info["image_root"] == str(two_stores)
    assert merged.load_image(one).getpixel((0, 0)) == (255, 0, 0)
    assert merged.load_image(merged.get("3")).getpixel((0, 0)) == (0, 0, 255)
    assert merged.counts()["captions"] == 5
    assert run(capsys, "verify", out)[0] == 0


def test_merge_can_embed_images(capsys, two_stores):
    code, _, _ = run(capsys, "merge", two_stores / "E", two_stores / "A", two_stores / "B", "--embed-images")
    assert code == 0
    merged = CaptionStore(two_stores / "E")
    assert all(r.image_bytes and r.image_path is None for r in merged.iter_records())
    (two_stores / "imgsA" / "sub" / "a.png").unlink()  # the merged store no longer needs the input folders
    assert merged.load_image(merged.get("1")).getpixel((0, 0)) == (255, 0, 0)


def test_verify_exit_codes_and_problem_count(capsys, two_stores):
    code, out, _ = run(capsys, "verify", two_stores / "A")
    assert code == 0 and "0 problems" in out
    (two_stores / "imgsA" / "sub" / "a.png").write_bytes(b"")
    code, out, _ = run(capsys, "verify", two_stores / "A")
    assert code == 1 and "1 problems" in out and "'1'" in out and "zero bytes" in out
    assert run(capsys, "verify", two_stores / "A", "--skip-images")[0] == 0


def test_errors_are_one_line_without_traceback(capsys, two_stores, tmp_path):
    code, out, err = run(capsys, "show", two_stores / "A", "nope")
    assert code == 2 and "'nope'" in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    code, _, err = run(capsys, "stats", tmp_path / "missing")
    assert code == 2 and "does not exist" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "merge", two_stores / "A", two_stores / "A")
    assert code == 2 and "is the output store" in err
