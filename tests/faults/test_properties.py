"""Property-based tests (hypothesis, bounded examples): the ingest line parsers (JSON lines, CC3M TSV) fed
arbitrary bytes and unicode never raise, never store a path leaving the images root, and never lose a good record
mixed in among the bad ones; ``shear`` and ``split_sentences`` never raise and never invent or lose words."""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from vlforge.common.ingest import ingest
from vlforge.common.store import CaptionStore
from vlforge.common.store.images import resolve_image_path
from vlforge.common.text import shear, split_sentences

pytestmark = pytest.mark.faults
EXAMPLES = int(os.environ.get("VLFORGE_PROPERTY_EXAMPLES", "25"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PNG = io.BytesIO()
Image.new("RGB", (4, 4), (9, 9, 9)).save(PNG, "PNG")

nasty_paths = st.one_of(st.text(max_size=30), st.sampled_from(["../x.png", "/etc/passwd", "a/../../x.png",
                                                               "a\x00b.png", "", ".", "..", "link.png"]))
json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                                     st.text(max_size=20)),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                      max_size=3), max_leaves=8)
bad_json_lines = st.one_of(
    st.binary(max_size=80).map(lambda b: b.replace(b"\n", b" ")),
    st.text(max_size=80).map(lambda t: t.replace("\n", " ").replace("\r", " ").encode("utf-8", "surrogatepass")),
    st.fixed_dictionaries({}, optional={"image": st.one_of(nasty_paths, json_values),
                                        "caption": json_values, "id": json_values}).map(
        lambda d: json.dumps(d).encode()),
)


def _root_with_images(names: list[str]) -> Path:
    root = Path(tempfile.mkdtemp(prefix="vlf-prop-"))
    (root / "imgs").mkdir()
    for name in names:
        (root / "imgs" / name).write_bytes(PNG.getvalue())
    (root / "outside.png").write_bytes(PNG.getvalue())
    os.symlink(root / "outside.png", root / "imgs" / "link.png")
    return root


def _stored_paths_stay_under(store: CaptionStore, images_root: Path) -> None:
    for record in store.iter_records():
        if record.image_path is not None:
            resolve_image_path(store.image_root, record.image_path, record.image_id)  # raises if it escapes
            assert os.path.realpath(os.path.join(store.image_root, record.image_path)).startswith(
                os.path.realpath(images_root) + os.sep)


@SETTINGS
@given(bad=st.lists(bad_json_lines, max_size=12), good_at=st.lists(st.integers(0, 12), min_size=1, max_size=4),
       caption=st.text(min_size=1, max_size=40).filter(lambda t: t.strip() and "\x00" not in t))
def test_jsonl_lines_of_any_bytes_never_raise_escape_or_lose_a_good_record(bad, good_at, caption):
    root = _root_with_images([f"good{k}.png" for k in range(len(good_at))])
    try:
        lines = list(bad)
        for k, position in enumerate(good_at):
            lines.insert(min(position, len(lines)), json.dumps({"id": f"good-{k}", "image": f"good{k}.png",
                                                                "caption": caption}).encode())
        (root / "ann.jsonl").write_bytes(b"\n".join(lines) + b"\n")
        with CaptionStore.create(root / "store") as store:
            summary = ingest(store, "jsonl", root / "ann.jsonl", root / "imgs")
            for k in range(len(good_at)):
                assert [c.text for c in store.get(f"good-{k}").captions][0] == caption.strip()
            _stored_paths_stay_under(store, root / "imgs")
            assert summary.read >= len(good_at)
    finally:
        shutil.rmtree(root)


tsv_garbage = st.one_of(st.binary(max_size=60), st.text(max_size=60).map(
    lambda t: t.encode("utf-8", "surrogatepass"))).map(lambda b: b.replace(b"\n", b" ").replace(b"\r", b" "))


@SETTINGS
@given(rows=st.lists(st.tuples(st.booleans(), tsv_garbage), min_size=1, max_size=14))
def test_cc3m_rows_of_any_bytes_never_raise_and_keep_every_good_row(rows):
    """Rows are keyed by their number among non-blank lines (the img2dataset key); a good row whose image was
    downloaded is always stored, whatever bytes its neighbours or its own URL hold."""
    root = Path(tempfile.mkdtemp(prefix="vlf-prop-"))
    try:
        (root / "dl" / "00000").mkdir(parents=True)
        lines, good_keys, key = [b"caption\turl"], [], 0
        for good, garbage in [*rows, (True, b"last")]:  # at least one downloaded image (an img2dataset folder)
            line = b"a good caption\thttp://x/" + garbage.replace(b"\t", b" ") if good else garbage
            lines.append(line)
            if not line.decode("utf-8", "surrogateescape").strip():
                continue
            if good:
                (root / "dl" / "00000" / f"{key:09d}.png").write_bytes(PNG.getvalue())
                good_keys.append(f"{key:09d}")
            key += 1
        (root / "cc.tsv").write_bytes(b"\n".join(lines) + b"\n")
        with CaptionStore.create(root / "store") as store:
            ingest(store, "cc3m", root / "cc.tsv", root / "dl")
            stored = set(store.ids())
            assert set(good_keys) <= stored
            for image_id in good_keys:
                url = store.get(image_id).meta["url"]
                assert url.startswith("http://x/") and url.encode("utf-8")  # always valid UTF-8
            _stored_paths_stay_under(store, root / "dl")
    finally:
        shutil.rmtree(root)


words = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200)


@settings(max_examples=EXAMPLES * 8, deadline=None, derandomize=True)
@given(text=words, budget=st.integers(0, 40))
def test_shear_never_raises_and_returns_consecutive_words_of_the_budget(text, budget):
    result = shear(text, budget)
    out, first = result.split(), text.split()[:budget]
    assert len(out) <= budget
    if out:
        assert any(first[i:i + len(out)] == out for i in range(len(first) - len(out) + 1))


@settings(max_examples=EXAMPLES * 8, deadline=None, derandomize=True)
@given(text=words)
def test_sentence_splitting_never_raises_and_never_loses_or_invents_a_word(text):
    sentences = split_sentences(text)
    assert " ".join(sentences).split() == text.split()
    assert all(s and s == " ".join(s.split()) for s in sentences)


@settings(max_examples=EXAMPLES * 2, deadline=None, derandomize=True)
@given(data=st.binary(max_size=300))
def test_sentence_splitting_of_any_bytes_decoded_leniently(data):
    text = data.decode("utf-8", "replace")
    assert " ".join(split_sentences(text)).split() == text.split()
