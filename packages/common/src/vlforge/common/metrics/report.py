"""Metrics as JSON in a run directory."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from numbers import Number
from pathlib import Path
from typing import Any

import torch

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


def write_metrics(run_dir: str | os.PathLike, metrics: Mapping[str, Any], name: str = "metrics.json") -> Path:
    """Write ``metrics`` (nested dicts / lists of numbers, strings, tensors) to ``run_dir/name`` and return the path.

    Tensors and numpy scalars become numbers or lists; NaN and infinities become ``null``. The file is written to a
    temporary name and renamed, so a reader never sees half a file.
    """
    path = Path(run_dir) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_plain(dict(metrics), "metrics"), indent=2, sort_keys=True, allow_nan=False)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text + "\n")
    tmp.replace(path)
    return path


def read_metrics(path: str | os.PathLike) -> dict[str, Any]:
    """Read a metrics JSON written by ``write_metrics``."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise VLForgeError(f"cannot read metrics file {path}: {exc}") from None
