"""Shared by the experiment tests: experiment scripts loaded as modules."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]


def load_script(relative_path: str) -> ModuleType:
    """The experiment script at ``relative_path`` (from the repository root) as a module, named by its stem."""
    path = REPO / relative_path
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def mllm_runner():
    """experiments/mllm_augmented.py as a module (its ``main(argv)`` runs the experiment)."""
    return load_script("experiments/mllm_augmented.py")


@pytest.fixture
def plan_runner():
    """experiments/run.py (the plan runner) as a module."""
    return load_script("experiments/run.py")
