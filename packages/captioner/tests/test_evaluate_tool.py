"""`vlforge-captioner evaluate`: every step checkpoint of a real `vlforge-captioner fit` run scored on a store
split, each result equal to evaluate_captioner on the same checkpoint; mistakes are one line."""

from __future__ import annotations

import json

import pytest

from vlforge.captioner.cli import TOOLS
from vlforge.captioner.evaluation import evaluate_captioner
from vlforge.captioner.hf_export import captioner_from_checkpoint
from vlforge.common.cli import run_cli
from vlforge.common.console import console
from vlforge.common.progress import is_status_line
from vlforge.common.shapes.build import build_shapes_store

CALLBACK = ('[{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint", "init_args": {"filename": "step{step}", '
            '"every_n_train_steps": 1, "save_top_k": -1, "save_last": true, "auto_insert_metric_name": false}}]')


@pytest.fixture(scope="module")
def sft_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("captioner_evaluate")
    store = str(root / "store")
    build_shapes_store(store, 30, seed=2, workers=1, image_size=32, split_fractions={"seed": 0.7, "val": 0.3})
    assert run_cli("captioner", ["fit", "--config", "captioner:model/sft_tiny.yaml",
                                 "--config", "captioner:data/shapes_sft.yaml", "--data.init_args.store", store,
                                 "--data.init_args.batch_size", "4", "--data.init_args.val_split", "null",
                                 "--model.init_args.lr", "0.05", "--trainer.max_steps", "2",
                                 "--trainer.callbacks", CALLBACK, "--trainer.enable_progress_bar", "false",
                                 "--trainer.enable_model_summary", "false", "--run_root", str(root / "runs")]) == 0
    return store, next((root / "runs").rglob("last.ckpt")).parent


def test_evaluate_scores_every_step_checkpoint_like_evaluate_captioner(sft_run, tmp_path, capsys,
                                                                       monkeypatch) -> None:
    monkeypatch.setenv("VLFORGE_PROGRESS_INTERVAL", "0")  # a status line per batch, as in a log file
    monkeypatch.delenv("VLFORGE_PROGRESS", raising=False)
    store, checkpoints = sft_run
    out = tmp_path / "eval"
    assert console("captioner", TOOLS, ["evaluate", "--checkpoint", str(checkpoints), "--store", store,
                                        "--split", "val", "--limit", "3", "--max-new-tokens", "6",
                                        "--batch-size", "2", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    status = [line for line in captured.err.splitlines() if is_status_line(line)]
    assert [line.split()[2] for line in status] == ["2/3", "3/3", "3/3"] * 2  # per batch and at the end, per checkpoint
    assert status[0].startswith("evaluate val: 2/3 images (66.7 %), ") and "ETA" in status[0]
    assert "[2/2] step2:" in captured.out
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["results"]) == ["step1", "step2"] and metrics["last"] == metrics["results"]["step2"]
    assert [p.rsplit("/", 1)[-1] for p in metrics["checkpoints"]] == ["step1.ckpt", "step2.ckpt"]
    for name in ("step1", "step2"):
        evaluation = evaluate_captioner(captioner_from_checkpoint(checkpoints / f"{name}.ckpt"), store, split="val",
                                        caption_format="dense", limit=3, decoding={"max_new_tokens": 6},
                                        batch_size=2)
        assert metrics["results"][name] == pytest.approx(evaluation.summary()), name
        statistics, texts = metrics["statistics"][name], [t for t in evaluation.captions if t.strip()]
        assert statistics["examples"] == evaluation.captions[:2]
        assert texts  # the statistics of the captions scored, as analyze computes them
        assert statistics["lengths"]["mean"] == pytest.approx(sum(len(t.split()) for t in texts) / len(texts))
        assert statistics["lengths"]["count"] == len(texts) and statistics["words"]["top"][0][1] >= 1
    assert metrics["results"]["step1"]["num_images"] == 3


def test_evaluate_mistakes_are_one_line(sft_run, tmp_path, capsys) -> None:
    store, _ = sft_run
    empty = tmp_path / "empty"
    empty.mkdir()
    assert console("captioner", TOOLS, ["evaluate", "--checkpoint", str(empty), "--store", store, "--split", "val",
                                        "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "holds no step<N>.ckpt" in err and len(err.splitlines()) == 1
