"""`vlforge-vlm score`: CLIP scores of a real tiny open_clip CLIP (exported in open_clip's format) written into a
real LMDB store, against a direct open_clip computation; idempotent reruns, counted skips, one-line mistakes."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import open_clip
import pytest
import torch
from PIL import Image

from vlforge.common.console import console
from vlforge.common.progress import is_status_line
from vlforge.common.records import Caption, ImageRecord
from vlforge.common.store import CaptionStore
from vlforge.vlm.cli import TOOLS
from vlforge.vlm.models import ContrastiveModel, OpenClipImageTower, OpenClipTextTower
from vlforge.vlm.open_clip_export import export_open_clip, open_clip_model_config


@pytest.fixture
def clip_folder(tiny_open_clip, tmp_path) -> Path:
    """A tiny CLIP (real open_clip towers, seeded random weights) in open_clip's own folder format."""
    torch.manual_seed(0)
    model = ContrastiveModel(OpenClipImageTower(tiny_open_clip), OpenClipTextTower(tiny_open_clip))
    return export_open_clip(model, tmp_path / "open_clip", open_clip_model_config(tiny_open_clip, tiny_open_clip))


@pytest.fixture
def store(shapes_store, tmp_path) -> Path:
    copy = tmp_path / "store"
    shutil.copytree(shapes_store, copy)
    return copy


def _score(capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    assert console("vlm", TOOLS, ["score", *argv]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _scores(store: Path) -> dict[tuple[str, tuple[str, str, str]], dict]:
    with CaptionStore(store) as s:
        return {(r.image_id, c.key()): dict(c.scores) for r in s.iter_records() for c in r.captions}


def _direct_open_clip(folder: Path, image: Image.Image, text: str) -> float:
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{folder}")
    tokenizer = open_clip.tokenize
    with torch.no_grad():
        image_features = model.eval().encode_image(preprocess(image)[None])
        text_features = model.encode_text(tokenizer([text], context_length=model.context_length))
    return torch.cosine_similarity(image_features, text_features).item()


def test_score_writes_direct_open_clip_similarities_once(store, clip_folder, capsys, monkeypatch):
    monkeypatch.setenv("VLFORGE_PROGRESS_INTERVAL", "0")  # a status line per image, as in a log file
    monkeypatch.delenv("VLFORGE_PROGRESS", raising=False)
    args = ["--store", str(store), "--checkpoint", str(clip_folder), "--source", "gt", "--split", "test",
            "--batch-size", "16"]
    with CaptionStore(store) as s:
        records = list(s.iter_records(split="test"))
        expected = [(r, c) for r in records for c in r.captions if c.source == "gt" and c.text.strip()]
    assert console("vlm", TOOLS, ["score", *args]) == 0
    out, err = capsys.readouterr()
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["images"] == len(records) and summary["scored"] == len(expected) > 16
    assert summary["sources"] == {"gt": len(expected)} and summary["already_scored"] == summary["failed_images"] == 0
    status = [line for line in err.splitlines() if is_status_line(line)]
    n = len(records)
    assert [line.split()[1] for line in status] == [f"{done}/{n}" for done in range(1, n + 1)] + [f"{n}/{n}"]
    assert status[-1].startswith(f"clip_score: {n}/{n} images (100.0 %), ") and "ETA" in status[0]
    written = _scores(store)
    assert sum("clip_score" in scores for scores in written.values()) == len(expected)  # nothing else touched
    with CaptionStore(store) as s:
        for record, caption in expected[:: max(1, len(expected) // 5)]:
            direct = _direct_open_clip(clip_folder, s.load_image(record), caption.text)
            scores = written[(record.image_id, caption.key())]
            assert scores["clip_score"] == pytest.approx(direct, abs=1e-5)
            assert scores["clip_score_by"] == str(clip_folder)

    again = _score(capsys, *args)
    assert again["scored"] == 0 and again["already_scored"] == len(expected)
    assert _scores(store) == written
    rescored = _score(capsys, *args, "--rescore")
    assert rescored["scored"] == len(expected)
    rewritten = _scores(store)
    assert rewritten.keys() == written.keys()
    for key, scores in written.items():
        assert rewritten[key].get("clip_score") == pytest.approx(scores.get("clip_score"), abs=1e-6), key


def test_unloadable_image_is_skipped_and_counted(tmp_path, clip_folder, capsys, caplog):
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 10, 10)).save(buffer, "PNG")
    (tmp_path / "images").mkdir()
    store = CaptionStore.create(tmp_path / "store", image_root=tmp_path / "images")
    store.put_records([
        ImageRecord("good", "test", 32, 32, [Caption("a red square", "gt"), Caption(" ", "gt")],
                    image_bytes=buffer.getvalue()),
        ImageRecord("gone", "test", 32, 32, [Caption("a blue circle", "gt")], image_path="gone.png"),
    ])
    store.close()
    summary = _score(capsys, "--store", str(tmp_path / "store"), "--checkpoint", str(clip_folder))
    assert (summary["images"], summary["scored"], summary["empty"], summary["failed_images"]) == (2, 1, 1, 1)
    assert "record 'gone': image skipped" in caplog.text


@pytest.mark.parametrize("argv, message", [
    (["--source", "nobody"], "has no captions of source 'nobody'"),
    (["--split", "nope"], "has no split 'nope'"),
    (["--batch-size", "0"], "batch_size must be >= 1"),
])
def test_mistakes_are_one_line(store, clip_folder, capsys, argv, message):
    assert console("vlm", TOOLS, ["score", "--store", str(store), "--checkpoint", str(clip_folder), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("vlforge-vlm score: error: ") and message in err
