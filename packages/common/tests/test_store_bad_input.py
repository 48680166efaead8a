"""The store's own bad inputs: each is a one-line VLForgeError naming the record, key or file; nothing is lost."""

import io
import json
import os

import lmdb
import pytest
from PIL import Image

from vlforge.common.errors import VLForgeError
from vlforge.common.records import Caption, ImageRecord
from vlforge.common.store import CaptionStore


def png(size=(8, 8)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (1, 2, 3)).save(buf, "PNG")
    return buf.getvalue()


def record(image_id, **kw) -> ImageRecord:
    kw.setdefault("image_bytes", png()) if "image_path" not in kw else None
    return ImageRecord(image_id=image_id, split="train", width=8, height=8, captions=[Caption("c", "gt")], **kw)


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def test_append_to_unknown_id_names_it_and_writes_nothing(tmp_path):
    store = CaptionStore.create(tmp_path / "s")
    store.put_records([record("known")])
    with pytest.raises(VLForgeError) as err:
        store.append_captions({"known": [Caption("new", "gt")], "ghost": [Caption("boo", "gt")]})
    assert "'ghost'" in one_line(err)
    assert [c.text for c in store.get("known").captions] == ["c"]
    assert store.counts()["captions"] == 1


def test_newer_schema_is_refused(tmp_path):
    CaptionStore.create(tmp_path / "s").close()
    env = lmdb.open(str(tmp_path / "s"))
    with env.begin(write=True) as txn:
        info = json.loads(txn.get(b"meta/info"))
        txn.put(b"meta/info", json.dumps({**info, "schema_version": 7}).encode())
    env.close()
    with pytest.raises(VLForgeError) as err:
        CaptionStore(tmp_path / "s")
    assert "schema version 7" in one_line(err) and "<= 1" in one_line(err)


@pytest.mark.parametrize("kind", ["missing", "empty_dir", "file", "foreign_lmdb"])
def test_a_path_that_is_not_a_store(tmp_path, kind):
    path = tmp_path / "x"
    if kind == "empty_dir":
        path.mkdir()
    elif kind == "file":
        path.write_text("hello")
    elif kind == "foreign_lmdb":
        env = lmdb.open(str(path))
        with env.begin(write=True) as txn:
            txn.put(b"something", b"else")
        env.close()
    with pytest.raises(VLForgeError) as err:
        CaptionStore(path)
    assert str(path) in one_line(err)


def test_create_refuses_a_foreign_non_empty_directory_and_a_file(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.jpg").write_bytes(b"x")
    with pytest.raises(VLForgeError, match="not a vlforge store"):
        CaptionStore.create(tmp_path / "photos")
    (tmp_path / "f").write_text("x")
    with pytest.raises(VLForgeError, match="not a directory"):
        CaptionStore.create(tmp_path / "f")


def test_unwritable_directory(tmp_path):
    if os.geteuid() == 0:  # root ignores permission bits; sysfs refuses even root
        target = "/sys/vlforge-store-test"
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o500)
        target = str(locked / "s")
    with pytest.raises(VLForgeError) as err:
        CaptionStore.create(target)
    assert target in one_line(err)


def test_read_only_store_refuses_writes(tmp_path):
    CaptionStore.create(tmp_path / "s").close()
    reader = CaptionStore(tmp_path / "s")
    with pytest.raises(VLForgeError, match="read-only"):
        reader.put_records([record("a")])


@pytest.mark.parametrize("path", ["../outside.png", "a/../../outside.png", "/etc/passwd", ""])
def test_image_path_escaping_the_root_is_refused_at_put_and_at_load(tmp_path, path):
    store = CaptionStore.create(tmp_path / "s", image_root=tmp_path / "root")
    with pytest.raises(VLForgeError) as err:
        store.put_records([record("esc", image_path=path)])
    assert "'esc'" in one_line(err)
    assert "esc" not in store
    with pytest.raises(VLForgeError, match="'esc'"):
        store.load_image(record("esc", image_path=path))


def test_symlink_leaving_the_root_is_refused(tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "secret.png").write_bytes(png())
    os.symlink(tmp_path / "secret.png", tmp_path / "root" / "link.png")
    store = CaptionStore.create(tmp_path / "s", image_root=tmp_path / "root")
    store.put_records([record("ln", image_path="link.png")])
    with pytest.raises(VLForgeError, match="outside the images root"):
        store.load_image(store.get("ln"))


@pytest.mark.parametrize("case", ["zero_bytes", "truncated", "garbage", "missing_file", "zero_byte_file"])
def test_bad_image_bytes_name_the_record(tmp_path, case):
    root = tmp_path / "root"
    root.mkdir()
    store = CaptionStore.create(tmp_path / "s", image_root=root)
    data = {"zero_bytes": b"", "truncated": png((64, 64))[:60], "garbage": b"not an image at all"}
    if case in data:
        rec = record("bad", image_bytes=data[case])
    else:
        if case == "zero_byte_file":
            (root / "bad.png").write_bytes(b"")
        rec = record("bad", image_path="bad.png")
    store.put_records([rec])
    with pytest.raises(VLForgeError) as err:
        store.load_image(store.get("bad"))
    message = one_line(err)
    assert "'bad'" in message
    if case == "missing_file":
        assert "missing" in message and str(root / "bad.png") in message


def test_invalid_record_aborts_only_its_batch(tmp_path):
    store = CaptionStore.create(tmp_path / "s")
    store.put_records([record("ok")])
    both = ImageRecord("both", "train", 8, 8, [Caption("c", "gt")], image_path="a.png", image_bytes=png())
    with pytest.raises(VLForgeError, match="'both'"):
        store.put_records([record("fine"), both])
    assert store.ids() == ["ok"]
    assert store.counts()["images"] == 1
    with pytest.raises(VLForgeError, match="image id"):
        store.put_records([record("x" * 500)])
    with pytest.raises(VLForgeError, match="kind"):
        Caption("t", "gt", kind="poem")


def test_missing_id_and_closed_store(tmp_path):
    store = CaptionStore.create(tmp_path / "s")
    with pytest.raises(VLForgeError, match="'nope'"):
        store.get("nope")
    store.close()
    with pytest.raises(VLForgeError, match="closed"):
        store.get("nope")
