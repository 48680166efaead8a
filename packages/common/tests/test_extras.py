"""A config that needs an optional extra which is not installed: one line naming the extra, exit code 2."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from vlforge.common.cli import run_cli
from vlforge.common.errors import VLForgeError
from vlforge.common.extras import require_extra

TOY_BASE = Path(__file__).parent / "toy" / "toy_base.yaml"


def test_a_missing_extra_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "deepspeed", None)  # as if deepspeed were not installed
    with pytest.raises(VLForgeError, match=r"pip install 'vlforge-common\[deepspeed\]'"):
        require_extra("deepspeed", "the DeepSpeed ZeRO strategy")
    monkeypatch.setitem(sys.modules, "bitsandbytes", None)
    with pytest.raises(VLForgeError, match=r"QLoRA needs bitsandbytes, which is not installed: "
                                           r"pip install 'vlforge-captioner\[qlora\]'"):
        require_extra("bitsandbytes", "QLoRA")


def test_the_deepspeed_preset_without_deepspeed_is_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "deepspeed", None)
    code = run_cli("common", ["fit", "--config", str(TOY_BASE), "--config", "common:trainer/deepspeed_zero2.yaml",
                              "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--run_root", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1] == ("vlforge-common: error: trainer.strategy vlforge.common.strategies.ZeroStrategy needs "
                       "deepspeed, which is not installed: pip install 'vlforge-common[deepspeed]'")
