"""Metrics as JSON in a run directory."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from numbers import Number
from pathlib import Path
from typing import Any

import torch

from vlforge.common.atomic_file import write_atomically
from vlforge.common.errors import VLForgeError


def _plain(value: Any, key: str) -> Any:
    if isinstance(value, torch.Tensor):
        value = value.tolist()
    if hasattr(value, "item") and not isinstance(value, (list, dict)):  # numpy scalar
        value = value.item()
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, Number):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _plain(v, f"{key}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{key}[{i}]") for i, v in enumerate(value)]
    raise VLForgeError(f"metric {key!r} has a value of type {type(value).__name__} that JSON cannot hold")


def write_metrics(run_dir: str | os.PathLike, metrics: Mapping[str, Any], name: str = "metrics.json",
                  inputs: Sequence[str | os.PathLike | None] = ()) -> Path:
    """Write ``metrics`` (nested dicts / lists of numbers, strings, tensors) to ``run_dir/name`` and return the path.

    Tensors and numpy scalars become numbers or lists; NaN and infinities become ``null``. The file is written
    atomically and never onto one of ``inputs`` (``common.atomic_file.write_atomically``), so a reader never sees
    half a file.
    """
    path = Path(run_dir) / name
    text = json.dumps(_plain(dict(metrics), "metrics"), indent=2, sort_keys=True, allow_nan=False)
    write_atomically(path, text + "\n", inputs)
    return path


def read_metrics(path: str | os.PathLike) -> dict[str, Any]:
    """Read a metrics JSON written by ``write_metrics``."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise VLForgeError(f"cannot read metrics file {path}: {exc}") from None
