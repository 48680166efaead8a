"""Bad input at ingest: each kind is skipped (or merged) with a count by reason and a log line naming the
record; nothing already stored is lost; `vlforge-store ingest` exits 0 when at least one record went in, else
non-zero with a one-line reason."""

from __future__ import annotations

import io
import json
import logging
import random
import tarfile
from pathlib import Path

import pytest
from PIL import Image

from vlforge.common.ingest import ingest
from vlforge.common.ingest.checks import MAX_CAPTION_BYTES
from vlforge.common.store import CaptionStore
from vlforge.common.store_cli import main


def jpeg(size=(24, 16)) -> bytes:
    buf = io.BytesIO()
    Image.frombytes("RGB", size, random.Random(0).randbytes(size[0] * size[1] * 3)).save(buf, "JPEG")
    return buf.getvalue()


def write_lines(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def line(image: str, caption) -> bytes:
    return json.dumps({"image": image, "caption": caption}).encode()


@pytest.fixture
def images(tmp_path) -> Path:
    """good.jpg, good2.jpg, empty.jpg (0 bytes), truncated.jpg, garbage.jpg (text) and ../outside.jpg."""
    root = tmp_path / "images"
    root.mkdir()
    (root / "good.jpg").write_bytes(jpeg())
    (root / "good2.jpg").write_bytes(jpeg((8, 8)))
    (root / "empty.jpg").write_bytes(b"")
    data = jpeg()
    (root / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (root / "garbage.jpg").write_bytes(b"<html>404 not found</html>")
    (tmp_path / "outside.jpg").write_bytes(jpeg())
    return root


def test_every_bad_jsonl_record_is_counted_by_reason_and_logged(tmp_path, images, caplog):
    ann = write_lines(tmp_path / "bad.jsonl", [
        line("good.jpg", ["a good caption", "   ", "a good caption"]),   # 1: one dropped, the repeat folded
        line("missing.jpg", "a caption"),                                 # 2: missing_image
        line("empty.jpg", "a caption"),                                   # 3: empty_image
        line("truncated.jpg", "a caption"),                               # 4: bad_image
        line("garbage.jpg", "a caption"),                                 # 5: bad_image
        line("../outside.jpg", "a caption"),                              # 6: path_outside_root
        line(str(tmp_path / "outside.jpg"), "a caption"),                 # 7: path_outside_root (absolute)
        json.dumps({"image": "good2.jpg"}).encode(),                      # 8: no_caption (none given)
        line("good2.jpg", " \t "),                                        # 9: empty_caption -> no_caption
        b'{"image": "good2.jpg", "caption": "caf\xe9"}',                  # 10: invalid_utf8 -> no_caption
        line("good2.jpg", "x" * (MAX_CAPTION_BYTES + 1)),                 # 11: caption_too_long -> no_caption
        b'{"image": "good2.jpg", "caption": "unterminated',               # 12: malformed_json
        b'["a", "list"]',                                                 # 13: malformed_json
        line("good.jpg", "a second caption"),                             # 14: duplicate id, merged
        line("good2.jpg", 42),                                            # 15: not_text -> no_caption
    ])
    store = CaptionStore.create(tmp_path / "store")
    with caplog.at_level(logging.WARNING, logger="vlforge.ingest"):
        summary = ingest(store, "jsonl", ann, images)
    assert summary.read == 15
    assert (summary.added, summary.merged, summary.duplicates) == (1, 1, 1)
    assert dict(summary.skipped) == {"missing_image": 1, "empty_image": 1, "bad_image": 2,
                                     "path_outside_root": 2, "no_caption": 5, "malformed_json": 2}
    assert dict(summary.captions_dropped) == {"empty_caption": 2, "invalid_utf8": 1, "caption_too_long": 1,
                                              "not_text": 1}
    assert store.ids() == ["good.jpg"]
    assert [c.text for c in store.get("good.jpg").captions] == ["a good caption", "a second caption"]
    assert store.counts()["captions"] == 2
    logged = caplog.text
    for n, reason in [(2, "missing_image"), (3, "empty_image"), (4, "bad_image"), (6, "path_outside_root"),
                      (8, "no_caption"), (10, "invalid_utf8"), (11, "caption_too_long"),
                      (12, "malformed_json")]:
        assert f"line {n} of bad.jsonl" in logged and f"({reason})" in logged
    assert "line 14 of bad.jsonl: merged (duplicate_id)" in logged


def test_rerun_and_duplicates_never_double(tmp_path, images):
    ann = write_lines(tmp_path / "d.jsonl", [line("good.jpg", "one"), line("good2.jpg", "two"),
                                            line("good.jpg", "one")])
    store = CaptionStore.create(tmp_path / "store")
    first = ingest(store, "jsonl", ann, images, batch_size=1)
    assert (first.added, first.merged, first.duplicates, first.captions_added) == (2, 1, 1, 2)
    second = ingest(store, "jsonl", ann, images)
    assert (second.added, second.merged, second.captions_added) == (0, 3, 0)
    assert store.counts()["images"] == 2 and store.counts()["captions"] == 2


def test_bad_input_never_loses_what_is_stored(tmp_path, images):
    store = CaptionStore.create(tmp_path / "store")
    ingest(store, "jsonl", write_lines(tmp_path / "good.jsonl", [line("good.jpg", "kept caption")]), images)
    before = store.get("good.jpg")
    # the same id again, now with a broken image, and an empty caption: skipped, the stored record untouched
    (images / "good.jpg").write_bytes(b"")
    summary = ingest(store, "jsonl", write_lines(tmp_path / "bad.jsonl", [line("good.jpg", "new caption"),
                                                                           line("good2.jpg", "")]), images)
    assert summary.went_in == 0 and dict(summary.skipped) == {"empty_image": 1, "no_caption": 1}
    assert store.get("good.jpg") == before and store.counts()["images"] == 1


def test_coco_json_with_invalid_utf8_and_broken_entries(tmp_path, images):
    raw = (b'{"images": [{"id": 1, "file_name": "good.jpg"}, {"id": 2, "file_name": "../outside.jpg"}, '
           b'{"file_name": "no-id.jpg"}, {"id": 3, "file_name": "good2.jpg"}], '
           b'"annotations": [{"image_id": 1, "caption": "fine"}, {"image_id": 1, "caption": "na\xefve caf\xe9"}, '
           b'{"image_id": 2, "caption": "x"}, {"image_id": 9, "caption": "orphan"}, {"caption": "no image id"}]}')
    ann = tmp_path / "captions_train2014.json"
    ann.write_bytes(raw)
    store = CaptionStore.create(tmp_path / "store")
    summary = ingest(store, "coco", ann, images)
    assert store.ids() == ["1"] and [c.text for c in store.get("1").captions] == ["fine"]
    assert dict(summary.captions_dropped) == {"invalid_utf8": 1}
    assert dict(summary.skipped) == {"path_outside_root": 1, "malformed_entry": 3, "no_caption": 1}


def test_cc3m_bad_rows(tmp_path):
    images = tmp_path / "cc3m" / "00000"
    images.mkdir(parents=True)
    for key in range(5):
        (images / f"{key:09d}.jpg").write_bytes(jpeg())
    (images / "000000003.jpg").write_bytes(b"")
    tsv = tmp_path / "cc.tsv"
    tsv.write_bytes(b"a fine caption\thttp://e/0.jpg\n"
                    b"only one column\n"
                    b"caf\xe9 caption\thttp://e/2.jpg\n"
                    b"zero byte image\thttp://e/3.jpg\n"
                    b"   \thttp://e/4.jpg\n"
                    b"failed download\thttp://e/5.jpg\n")
    store = CaptionStore.create(tmp_path / "store")
    summary = ingest(store, "cc3m", tsv, tmp_path / "cc3m")
    assert summary.added == 1 and store.ids() == ["000000000"]
    assert dict(summary.skipped) == {"malformed_row": 1, "no_caption": 2, "empty_image": 1,
                                     "missing_image": 1}
    assert dict(summary.captions_dropped) == {"invalid_utf8": 1, "empty_caption": 1}


def test_webdataset_bad_samples_and_truncated_shard(tmp_path):
    shard = tmp_path / "00000.tar"
    with tarfile.open(shard, "w") as tar:
        for name, data in [("a.jpg", jpeg()), ("a.txt", b"fine"),
                           ("b.jpg", jpeg()), ("b.txt", b"\xff\xfe bad utf8"),
                           ("c.jpg", jpeg()), ("c.json", b"{not json"),
                           ("d.jpg", b""), ("d.txt", b"zero-byte image"),
                           ("e.jpg", jpeg()), ("e.txt", b"last sample")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    store = CaptionStore.create(tmp_path / "store")
    summary = ingest(store, "webdataset", shard)
    assert store.ids() == ["a", "e"]
    assert dict(summary.skipped) == {"no_caption": 1, "malformed_json": 1, "empty_image": 1}
    raw = shard.read_bytes()
    # cut inside a member header (tarfile itself stops silently there) and inside a member's data
    for n, end in enumerate([raw.index(b"zero-byte image") - 600, raw.index(b"last sample") - 700]):
        cut = tmp_path / f"cut{n}.tar"
        cut.write_bytes(raw[:end])
        summary = ingest(CaptionStore.create(tmp_path / f"cut_store{n}"), "webdataset", cut)
        assert summary.added == 1 and summary.skipped["truncated_shard"] == 1


def test_cli_exit_codes_and_summary(tmp_path, images, capsys):
    good = write_lines(tmp_path / "good.jsonl", [line("good.jpg", "a caption"), line("missing.jpg", "x")])
    store = str(tmp_path / "store")
    assert main(["ingest", store, "--format", "jsonl", "--annotations", str(good),
                 "--images", str(images)]) == 0
    out = capsys.readouterr().out
    assert "images added:      1" in out and "missing_image: 1" in out
    assert main(["ingest", store, "--format", "jsonl", "--annotations", str(good), "--images", str(images),
                 "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["added"], summary["merged"], summary["skipped"]) == (0, 1, {"missing_image": 1})

    bad = write_lines(tmp_path / "bad.jsonl", [line("missing.jpg", "x"), b"{oops"])
    code = main(["ingest", store, "--format", "jsonl", "--annotations", str(bad), "--images", str(images)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert err[-1].startswith("vlforge-store: error: no record went in from") and "bad.jsonl" in err[-1]
    assert "missing_image: 1" in err[-1] and "malformed_json: 1" in err[-1]
    reopened = CaptionStore(store)
    assert reopened.counts()["images"] == 1
    assert [(run["format"], run["added"], run["merged"]) for run in reopened.info["ingests"]] == [
        ("jsonl", 1, 0), ("jsonl", 0, 1)]   # how the store was made: the two runs that put records in


@pytest.mark.parametrize("fmt, content, message", [
    ("coco", b"{\"images\": [", "is not valid JSON"),
    ("coco", b'[{"image": "a.jpg"}]', "is not a COCO captions file"),
    ("karpathy", b'{"annotations": []}', "missing key(s) images"),
    ("llava", b'{"images": []}', "is not a LLaVA JSON file"),
    ("webdataset", b'{"images": []}', "is not a readable tar shard"),
    ("cc3m", b"name\tdescription\nx\ty\n", "is not a cc3m TSV"),
])
def test_wrong_format_is_a_one_line_error_naming_the_file(tmp_path, images, capsys, fmt, content, message):
    ann = tmp_path / "annotations.file"
    ann.write_bytes(content)
    code = main(["ingest", str(tmp_path / "store"), "--format", fmt, "--annotations", str(ann),
                 "--images", str(images)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1
    assert str(ann) in err[0] and message in err[0]
    assert not (tmp_path / "store").exists()  # a store this failed run created is not left behind empty


def test_unreadable_or_missing_annotation_file(tmp_path, images, capsys):
    missing = tmp_path / "nope.json"
    assert main(["ingest", str(tmp_path / "s"), "--format", "coco", "--annotations", str(missing),
                 "--images", str(images)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(missing) in err[0] and "cannot be read" in err[0]
    assert main(["ingest", str(tmp_path / "s"), "--format", "webdataset", "--annotations",
                 str(tmp_path / "none-*.tar")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "none-*.tar" in err[0]
    assert main(["ingest", str(tmp_path / "s"), "--format", "coco", "--annotations", str(missing)]) != 0
    assert "needs --images" in capsys.readouterr().err
