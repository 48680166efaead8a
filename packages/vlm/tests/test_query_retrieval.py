"""`vlforge-vlm evaluate` with hard queries raw and rewritten (#14 item 5): a real tiny CLIP from `vlforge-vlm fit`,
a real store whose queries carry rewrites stored by the vlforge.common.rewrites contract (what `vlforge-rewriter
predict` writes); the reported R@k against a direct computation over the same texts."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from vlforge.common.cli import run_cli
from vlforge.common.console import console
from vlforge.common.metrics import read_metrics, retrieval_metrics
from vlforge.common.records import Caption
from vlforge.common.rewrites import QUERIES_KEY, queries_of
from vlforge.common.store import CaptionStore
from vlforge.vlm.cli import TOOLS
from vlforge.vlm.evaluation import encode_split, encode_texts
from vlforge.vlm.loading import load_clip

REWRITER = "oracle_rewriter"


@pytest.fixture(scope="module")
def checkpoint(shapes_store, tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("runs")
    code = run_cli("vlm", ["fit", "--config", "vlm:model/clip_tiny.yaml",
                           "--config", "vlm:data/shapes_alt_text_gt_short.yaml",
                           "--data.init_args.store", shapes_store, "--data.init_args.num_workers", "0",
                           "--data.init_args.batch_size", "16", "--trainer.max_steps", "30",
                           "--trainer.limit_val_batches", "0", "--trainer.num_sanity_val_steps", "0",
                           "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
                           "--run_root", str(root)])
    assert code == 0
    return str(root / "vlm" / "version_0" / "checkpoints" / "last.ckpt")


@pytest.fixture
def rewritten_store(shapes_store, tmp_path) -> tuple[str, dict[str, str]]:
    """The store with every query of the val split but the first of each image rewritten into the image's gt
    short caption (query id -> rewrite)."""
    path = tmp_path / "store"
    shutil.copytree(shapes_store, path)
    rewrites: dict[str, str] = {}
    with CaptionStore(path, readonly=False) as store:
        new = {}
        for record in store.iter_records(split="val"):
            short = record.captions_by(source="gt", kind="short")[0].text
            queries = queries_of(record, "gt")[1:]
            rewrites.update({qid: short for qid, _ in queries})
            provenance = {QUERIES_KEY: [{"query_id": qid, "original": c.text} for qid, c in queries]}
            new[record.image_id] = [Caption(short, source=REWRITER, kind="query", provenance=provenance)]
        store.append_captions(new)
    return str(path), rewrites


def _direct_t2i_r1(model, store: str, texts_of) -> float:
    encoding = encode_split(model, store, "val", 32)
    texts, owners = [], []
    for index, (image_id, captions) in enumerate(zip(encoding.image_ids, encoding.captions, strict=True)):
        for k, caption in enumerate(captions):
            if caption.source == "gt" and caption.kind == "query":
                texts.append(texts_of(f"{image_id}#{k}", caption.text))
                owners.append(index)
    similarity = encoding.image_features.float() @ encode_texts(model, texts).float().T
    return retrieval_metrics(similarity, torch.tensor(owners))["t2i_r1"]


def test_evaluate_reports_hard_query_recall_raw_and_rewritten(checkpoint, rewritten_store, tmp_path, capsys):
    store, rewrites = rewritten_store
    out = tmp_path / "eval"
    code = console("vlm", TOOLS, ["evaluate", "--checkpoint", checkpoint, "--stores", f"[{store}]", "--split", "val",
                                  "--metrics", "[retrieval]", "--rewritten_queries", REWRITER,
                                  "--output_dir", str(out)])
    assert code == 0
    header = capsys.readouterr().out.strip().splitlines()[0]
    assert "hq_raw_t2i_r1" in header and "hq_rewritten_t2i_r1" in header
    result = read_metrics(out / "metrics.json")["results"]["store"]["hard_queries"]
    model = load_clip(checkpoint)
    raw = _direct_t2i_r1(model, store, lambda qid, text: text)
    rewritten = _direct_t2i_r1(model, store, lambda qid, text: rewrites.get(qid, text))
    assert result["raw"]["t2i_r1"] == pytest.approx(raw)
    assert result["rewritten"]["t2i_r1"] == pytest.approx(rewritten)
    assert result["num_rewritten"] == len(rewrites) and result["num_fallback"] == result["num_queries"] - len(rewrites)
    # the "rewrites" are clean captions the retriever was trained on: they retrieve better than the hard queries
    assert result["rewritten"]["t2i_r1"] > result["raw"]["t2i_r1"]


def test_raw_only_and_a_store_without_queries(checkpoint, shapes_store, tmp_path, capsys):
    out = tmp_path / "eval"
    assert console("vlm", TOOLS, ["evaluate", "--checkpoint", checkpoint, "--stores", f"[{shapes_store}]",
                                  "--split", "val", "--metrics", "[hard_queries]", "--output_dir", str(out)]) == 0
    result = read_metrics(Path(out) / "metrics.json")["results"]["store"]["hard_queries"]
    assert set(result) == {"raw", "num_queries", "num_images"}
    code = console("vlm", TOOLS, ["evaluate", "--checkpoint", checkpoint, "--stores", f"[{shapes_store}]",
                                  "--split", "val", "--metrics", "[hard_queries]",
                                  "--queries", "{source: nobody, kind: query}",
                                  "--output_dir", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("vlforge-vlm evaluate: error:") and "source=nobody" in err[-1]
