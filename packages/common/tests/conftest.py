"""Makes the toy LitModule / DataModule (tests/toy/toy_lightning.py) importable by class_path, here and in the
subprocesses the DDP and console tests start."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from vlforge.common.checkpoint import allow_classes

TOY_DIR = Path(__file__).parent / "toy"
TOY_BASE = TOY_DIR / "toy_base.yaml"

if str(TOY_DIR) not in sys.path:
    sys.path.insert(0, str(TOY_DIR))

allow_classes("toy_lightning.")  # exports of the toy LitModule name toy classes; artefacts allow only listed ones


@pytest.fixture
def toy_env() -> dict[str, str]:
    """Environment for a subprocess that must import toy_lightning."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TOY_DIR), env.get("PYTHONPATH")]))
    return env


@pytest.fixture
def one_torch_thread():
    """One torch thread for tests of tiny models (a second one only adds contention on a shared machine); restored
    after the test. Use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
