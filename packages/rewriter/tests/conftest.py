"""Shared fixtures of the rewriter's training tests: a real ShapesWorld store, a real tiny CLIP retriever trained
2 steps with the vlm console, and D_SFT / D_PRO files from make-data (scene-graph oracle, MiniLM)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from vlforge.common.cli import run_cli
from vlforge.common.shapes.build import build_shapes_store


@pytest.fixture(scope="session", autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def shapes_store(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("rewriter_shapes") / "store"
    build_shapes_store(path, num_images=160, seed=0, image_size=32, workers=1)
    return str(path)


@pytest.fixture(scope="session")
def retriever_checkpoint(shapes_store, tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("rewriter_retriever")
    code = run_cli("vlm", ["fit", "--config", "vlm:model/clip_tiny.yaml",
                           "--config", "vlm:data/shapes_alt_text_gt_short.yaml",
                           "--data.init_args.store", shapes_store, "--data.init_args.num_workers", "0",
                           "--data.init_args.batch_size", "16", "--trainer.max_steps", "2",
                           "--trainer.limit_val_batches", "0", "--trainer.num_sanity_val_steps", "0",
                           "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
                           "--run_root", str(root)])
    assert code == 0
    return str(root / "vlm" / "version_0" / "checkpoints" / "last.ckpt")


@pytest.fixture(scope="session")
def pair_dir(shapes_store, retriever_checkpoint, tmp_path_factory) -> Path:
    """make-data on the pool split (about 110 images): every query, "high quality" up to rank 20 so that D_SFT
    has rows with an untrained retriever."""
    from vlforge.rewriter.make_data import main

    out = tmp_path_factory.mktemp("rewriter_pairs")
    code = main(["--store", shapes_store, "--split", "pool", "--checkpoint", retriever_checkpoint,
                 "--output_dir", str(out), "--pairs.high_quality_rank", "20", "--pairs.min_similarity", "0.0",
                 "--pairs.max_queries", "48"])
    assert code == 0
    return out


@pytest.fixture(scope="session")
def sft_run(pair_dir, tmp_path_factory) -> Path:
    """The shipped SFT config on the D_SFT file, 60 steps from the console (validation on the same file)."""
    from vlforge.rewriter.pair_files import SFT_FILE

    root = tmp_path_factory.mktemp("rewriter_sft")
    code = run_cli("rewriter", ["fit", "--config", "rewriter:sft_tiny.yaml",
                                "--data.init_args.train_file", str(pair_dir / SFT_FILE),
                                "--data.init_args.val_file", str(pair_dir / SFT_FILE),
                                "--trainer.max_steps", "60", "--trainer.val_check_interval", "30",
                                "--seed_everything", "0", "--run_name", "sft", "--run_root", str(root),
                                "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
                                "--trainer.num_sanity_val_steps", "0"])
    assert code == 0
    return root / "sft" / "version_0"
