"""Optional dependencies installed as extras: a one-line error naming the extra when a config needs one."""

from __future__ import annotations

import importlib
from typing import Any

from vlforge.common.errors import VLForgeError

EXTRAS = {"deepspeed": "vlforge-common[deepspeed]", "bitsandbytes": "vlforge-captioner[qlora]"}


def require_extra(module: str, needed_for: str) -> None:
    """Import `module` (one of EXTRAS) or raise a VLForgeError saying which extra to install."""
    try:
        importlib.import_module(module)
    except ImportError:
        raise VLForgeError(f"{needed_for} needs {module}, which is not installed: "
                           f"pip install '{EXTRAS[module]}'") from None


def check_strategy_extras(strategy: Any) -> None:
    """Before a Trainer is built: a DeepSpeed strategy (by name or class_path) needs the deepspeed extra."""
    name = getattr(strategy, "class_path", strategy)
    if isinstance(name, str) and ("deepspeed" in name.lower() or name.endswith("ZeroStrategy")):
        require_extra("deepspeed", f"trainer.strategy {name}")
