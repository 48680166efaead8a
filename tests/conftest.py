"""Shared by the experiment tests: the MLLM-augmented runner script loaded as a module."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def mllm_runner():
    """experiments/mllm_augmented.py as a module (its ``main(argv)`` runs the experiment)."""
    spec = importlib.util.spec_from_file_location("mllm_augmented", REPO / "experiments" / "mllm_augmented.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["mllm_augmented"] = module
    spec.loader.exec_module(module)
    return module
