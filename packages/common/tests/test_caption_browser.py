"""`vlforge-store browse`: the static page rendered by a real headless Chromium (Debian's `chromium`, installed here
when missing; the test fails, never skips, when it cannot be): images and captions counted in the rendered DOM,
paging, escaping, CHAIR marks, critic verdicts, scores, provenance, and a screenshot."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from vlforge.common.records import Caption, ImageRecord
from vlforge.common.shapes.build import build_shapes_store
from vlforge.common.store import CaptionStore
from vlforge.common.store_cli import main as store_main

HOSTILE = '<script>alert("x")</script> & "quotes" </section>'


def _chromium() -> str:
    """The chromium binary; installs Debian's package when it is missing (scripts/setup.sh does the same)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    install = "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium"
    result = subprocess.run(["bash", "-c", install], capture_output=True, text=True, timeout=900)
    found = shutil.which("chromium")
    if not found:
        pytest.fail(f"headless Chromium is needed and could not be installed ({install}):\n{result.stderr[-2000:]}")
    return found


def _render(chromium: str, page: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           "--allow-file-access-from-files", "--virtual-time-budget=5000", *extra, page.as_uri()],
                          capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("browse") / "shapes"
    build_shapes_store(path, 30, seed=0, workers=1)
    with CaptionStore(path, readonly=False) as writable:
        first = writable.ids()[0]
        record = writable.get(first)
        shape = record.meta["scene_graph"]["objects"][0]["shape"]
        other = next(s for s in ("circle", "square", "triangle", "star", "hexagon", "diamond")
                     if s not in {o["shape"] for o in record.meta["scene_graph"]["objects"]})
        writable.append_captions({first: [
            Caption(f"A {shape} next to a {other}.", source="tiny_captioner", kind="short",
                    provenance={"model": "preset:llava_tiny", "prompt": HOSTILE},
                    scores={"clip_score": 0.3141, "critic": [{"sentence": f"A {shape}.", "verdict": "correct"},
                                                             {"sentence": f"A {other}.", "verdict": "wrong"}]}),
            Caption(HOSTILE, source=HOSTILE, kind="free")]})
    return path, other


def test_the_rendered_page_shows_every_image_and_caption_of_the_page(store, tmp_path):
    store, other = store
    chromium = _chromium()
    out = tmp_path / "browse"
    assert store_main(["browse", str(store), "--out", str(out), "--limit", "10", "--page-size", "4"]) == 0
    page = out / "index.html"
    source = page.read_text()
    assert "<script>alert" not in source and html.escape(HOSTILE) in source
    assert "http://" not in source and "https://" not in source  # nothing to fetch: no CDN

    with CaptionStore(store) as reader:
        records = [reader.get(i) for i in reader.ids()[:10]]
    first_page = records[:4]
    expected_captions = sum(len(r.captions) for r in first_page)

    dom = _render(chromium, page, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    status = re.search(r'<span id="status">(\d+) images, (\d+) captions shown</span>', dom.stdout)
    assert status, "the page's script did not run"
    assert (int(status[1]), int(status[2])) == (4, expected_captions)
    assert '<span id="page">page 1 / 3</span>' in dom.stdout
    shown = re.findall(r'<section class="record" data-page="0">', dom.stdout)
    hidden = re.findall(r'<section class="record" data-page="[12]" hidden="">', dom.stdout)
    assert (len(shown), len(hidden)) == (4, 6)
    assert dom.stdout.count("<img ") == 10 and len(list((out / "images").glob("*.png"))) == 10

    # the added captions: a hallucinated shape marked, the critic's verdicts, the CLIP score, provenance on hover
    first_section = dom.stdout[dom.stdout.index('<section class="record"'):dom.stdout.index("</section>")]
    assert f'next to a <mark class="halluc">{other}</mark>.' in first_section
    assert 'class="ok">✓ A ' in dom.stdout and 'class="bad">✗ A ' in dom.stdout
    assert "CLIP 0.314" in dom.stdout and "preset:llava_tiny" in dom.stdout

    shot = tmp_path.parent / "browser.png"  # kept beside the test folders for a look
    result = _render(chromium, page, f"--screenshot={shot}", "--window-size=1000,700", "--hide-scrollbars")
    assert result.returncode == 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_sources_and_split_filters_and_bad_input(store, tmp_path, capsys):
    store, _ = store
    out = tmp_path / "gt_only"
    assert store_main(["browse", str(store), "--out", str(out), "--split", "pool", "--sources", "gt"]) == 0
    source = (out / "index.html").read_text()
    with CaptionStore(store) as reader:
        pool = reader.ids(split="pool")
        gt = sum(len(reader.get(i).captions_by(source="gt")) for i in pool)
    assert source.count('<li class="caption"') == gt and source.count('data-source="alt_text"') == 0
    assert source.count('<section class="record"') == len(pool)
    assert store_main(["browse", str(store), "--out", str(out), "--split", "nope"]) == 2
    assert "no images in split 'nope'" in capsys.readouterr().err
    assert store_main(["browse", str(store), "--out", str(out), "--limit", "0"]) == 2


def test_a_record_whose_image_is_missing_still_shows_its_captions(tmp_path):
    path = tmp_path / "paths"
    with CaptionStore.create(path) as writable:
        writable.set_info(image_root=str(tmp_path / "images"))
        writable.put_records([ImageRecord("gone", "val", 8, 8, [Caption("a red circle", "gt")], image_path="gone.png")])
    assert store_main(["browse", str(path), "--out", str(tmp_path / "out")]) == 0
    source = (tmp_path / "out" / "index.html").read_text()
    assert "image not available" in source and "a red circle" in source


def test_the_page_folder_is_replaced_whole_or_not_at_all_and_never_in_the_store(store, tmp_path, capsys):
    store, _ = store
    out = tmp_path / "page"
    assert store_main(["browse", str(store), "--out", str(out), "--split", "pool"]) == 0
    page = (out / "index.html").read_text()
    assert store_main(["browse", str(store), "--out", str(out), "--split", "nope"]) == 2  # fails midway
    assert (out / "index.html").read_text() == page and [p.name for p in tmp_path.iterdir()] == ["page"]
    assert store_main(["browse", str(store), "--out", str(out), "--split", "pool", "--limit", "2"]) == 0
    assert len(list((out / "images").iterdir())) == 2  # replaced whole: no thumbnail of the earlier page is left
    capsys.readouterr()
    assert store_main(["browse", str(store), "--out", str(store / "page")]) == 2
    assert "would overwrite the input" in capsys.readouterr().err and not (store / "page").exists()
