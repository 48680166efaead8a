"""Shared fixtures: the tiny LLaVA preset (built once per session), small RGB images."""

import numpy as np
import pytest
import torch
from PIL import Image

from vlforge.common.presets import build_preset


@pytest.fixture(autouse=True)
def one_cpu_thread():
    """The tiny models' matrices are so small that a second OpenMP thread only adds contention (measured 12x slower
    on the shared 2-core machine); restored after each test."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def llava_processor():
    return build_preset("llava_tiny")[1]


@pytest.fixture
def llava():
    """A fresh tiny LLaVA model (seeded random init) and its processor."""
    return build_preset("llava_tiny")


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for _ in range(4)]
