"""Caption analysis of a real ShapesWorld store with three generated captioner sources: statistics against
direct computations, CHAIR against the scene graphs, CLIP scores against a direct open_clip computation, and
the CLI."""

import json
import re
import shutil

import open_clip
import pytest
import torch
from safetensors.torch import save_file

from vlforge.captioner.analysis import analyze, content_words
from vlforge.captioner.cli import TOOLS
from vlforge.captioner.generation.run import generate_into_store
from vlforge.captioner.generation.spec import CaptionerSpec, GenerationConfig
from vlforge.common.console import console
from vlforge.common.metrics import chair, scene_objects
from vlforge.common.progress import is_status_line
from vlforge.common.records import Caption
from vlforge.common.shapes.build import build_shapes_store
from vlforge.common.store import CaptionStore


def main(argv: list[str]) -> int:
    """`vlforge-captioner ARGV` through the console (its exit code; errors as one line on stderr)."""
    return console("captioner", TOOLS, argv)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("analysis") / "store"
    build_shapes_store(path, 12, seed=2, workers=1, split_fractions={"pool": 1.0})
    specs = [
        CaptionerSpec(name="llava", decoding={"max_new_tokens": 16, "do_sample": False}),
        CaptionerSpec(
            name="qwen",
            source="preset:qwen2_vl_tiny",
            format="short",
            decoding={"max_new_tokens": 8, "do_sample": False},
        ),
    ]
    generate_into_store(path, GenerationConfig(specs, split="pool", shear=False))
    with CaptionStore(path, readonly=False) as s:
        first = s.ids("pool")[0]
        s.append_captions({first: [Caption("", "llava", "dense")]})
    return str(path)


def test_statistics_match_direct_computation(store, tmp_path):
    report = analyze(store, tmp_path / "out", split="pool", sources=["llava", "qwen", "alt_text"], top_k=5)
    with CaptionStore(store) as s:
        records = list(s.iter_records(split="pool"))
    llava = [c.text for r in records for c in r.captions_by(source="llava") if c.text]
    assert report["sources"]["llava"] == {"captions": len(llava) + 1, "empty": 1}
    assert report["lengths"]["llava"]["mean"] == pytest.approx(
        sum(len(t.split()) for t in llava) / len(llava)
    )
    assert set(report["lengths"]) == {"llava", "qwen", "alt_text"}
    alt = [c.text for r in records for c in r.captions_by(source="alt_text")]
    direct = chair(
        alt, [scene_objects(r.meta["scene_graph"]) for r in records for _ in r.captions_by("alt_text")]
    )
    assert report["chair"]["alt_text"]["chair_i"] == pytest.approx(direct.chair_i)
    words = [w for t in alt for w in content_words(t).split()]
    top_word, top_count = report["content_words"]["alt_text"]["top"][0]
    assert top_count == max(words.count(w) for w in set(words)) == words.count(top_word)
    assert "the" not in dict(report["content_words"]["alt_text"]["top"])
    assert report["clip_score"]["skipped"]
    assert {p.name for p in (tmp_path / "out").iterdir()} == {
        "analysis.json",
        "lengths.png",
        "words.png",
        "content_words.png",
    }


def test_gt_kinds_are_separate_labels_and_negatives_left_out(store, tmp_path):
    report = analyze(store, tmp_path / "out", sources=["gt"])
    assert {"gt:short", "gt:descriptive", "gt:dense"} <= set(report["sources"])
    assert not any("negative" in label or "query" in label for label in report["sources"])
    assert report["lengths"]["gt:short"]["mean"] < report["lengths"]["gt:dense"]["mean"]


def test_clip_scores_equal_a_direct_open_clip_computation(store, tmp_path):
    model, _, preprocess = open_clip.create_model_and_transforms("vlforge-tiny-vit-64", pretrained=None)
    checkpoint = tmp_path / "clip.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(checkpoint))
    report = analyze(
        store,
        tmp_path / "out",
        sources=["qwen"],
        clip_model="vlforge-tiny-vit-64",
        clip_checkpoint=checkpoint,
    )
    with CaptionStore(store) as s:
        pairs = [
            (s.load_image(r), c.text) for r in s.iter_records(source="qwen") for c in r.captions_by("qwen")
        ]
    tokenizer = open_clip.get_tokenizer("vlforge-tiny-vit-64")
    model.eval()
    with torch.no_grad():
        scores = [
            torch.cosine_similarity(
                model.encode_image(preprocess(img)[None]), model.encode_text(tokenizer([t]))
            ).item()
            for img, t in pairs
        ]
    assert report["clip_score"]["qwen"]["mean"] == pytest.approx(sum(scores) / len(scores), abs=1e-5)
    assert report["clip_score"]["qwen"]["count"] == len(pairs)
    assert (tmp_path / "out" / "clip_scores.png").stat().st_size > 0


def test_cli_generate_and_analyze(store, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("VLFORGE_PROGRESS_INTERVAL", "0")  # a status line per chunk, as in a log file
    monkeypatch.delenv("VLFORGE_PROGRESS", raising=False)
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    assert (
        main(
            [
                "generate",
                "--store",
                str(copy),
                "--config",
                "captioner:generation/shapes_tiny.yaml",
                "--limit",
                "2",
                "--batch-size",
                "2",
                "--shear-tokens",
                "5",
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    summaries = [json.loads(line) for line in captured.out.splitlines()]
    assert [s["captioned"] for s in summaries] == [2, 2, 2] and {s["shear_tokens"] for s in summaries} == {5}
    # the console configures logging: generation's INFO progress reaches stderr, one line per captioner at least
    progress = re.findall(r" INFO vlforge\.captioner\.\S+: (.*)", captured.err)
    assert all(any(s["name"] in line for line in progress) for s in summaries), captured.err[-2000:]
    status = [line for line in captured.err.splitlines() if is_status_line(line)]
    assert [line.split(":")[0] for line in status] == [f"generate {s['name']}" for s in summaries for _ in "12"]
    assert all(line.split()[2:4] == ["2/2", "images"] and "ETA" in line for line in status)
    assert (
        main(
            [
                "analyze",
                "--store",
                str(copy),
                "--out",
                str(tmp_path / "a"),
                "--source",
                "tiny_blip_descriptive",
            ]
        )
        == 0
    )
    status = [line for line in capsys.readouterr().err.splitlines() if is_status_line(line)]
    assert [line.split(":")[0] for line in status] == ["read captions"] * 13
    assert status[-1].startswith("read captions: 12/12 records (100.0 %), ")
    saved = json.loads((tmp_path / "a" / "analysis.json").read_text())
    with CaptionStore(copy) as written:  # reference: the generated captions as stored
        texts = [c.text for r in written.iter_records(source="tiny_blip_descriptive")
                 for c in r.captions if c.source == "tiny_blip_descriptive"]
    assert len(texts) == 2
    assert saved["sources"] == {
        "tiny_blip_descriptive": {"captions": 2, "empty": sum(not t.strip() for t in texts)}
    }
    assert main(["analyze", "--store", str(copy), "--out", str(tmp_path / "b"), "--source", "nobody"]) == 2
    assert capsys.readouterr().err.strip().endswith("has no captions of source 'nobody'")
    assert main(["analyze", "--store", str(copy), "--out", str(tmp_path / "b"), "--clip-model", "x"]) == 2
    assert capsys.readouterr().err.strip().endswith("pass clip_checkpoint too")
    missing = tmp_path / "none.safetensors"
    assert main(["analyze", "--store", str(copy), "--out", str(tmp_path / "b"), "--clip-model", "vlforge-tiny-vit-64",
                 "--clip-checkpoint", str(missing)]) == 2
    assert capsys.readouterr().err.strip().endswith(f"CLIP checkpoint {missing}: no such file (a weights file of "
                                                   "'vlforge-tiny-vit-64')")
