"""Export any training checkpoint (plain, DDP, DeepSpeed ZeRO shards) into one safetensors file plus the model's config
as JSON, and load that back without Lightning.

Layout of an export folder:
    model.safetensors   the weights (float tensors as trained; ZeRO shards merged to fp32)
    config.json         {"class_path": ..., "init_args": {...}} of the exported module, plus where it came from
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import load_file, save_file
from torch import nn

from vlforge.common.errors import VLForgeError
from vlforge.common.extras import require_extra
from vlforge.common.runs import find_run_config

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
_DEEPSPEED_PREFIX = "_forward_module."


def _deepspeed_safe_globals() -> list[Any]:
    """Plain data classes DeepSpeed pickles into ZeRO optimizer shards (no code runs when they are rebuilt)."""
    from deepspeed.runtime.fp16.loss_scaler import LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    return [LossScaler, ZeroStageEnum, fragment_address]


def _safe_load(path: Path, allowed: list[Any] | None = None) -> Any:
    try:
        with torch.serialization.safe_globals(allowed or []):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - unpickling errors come in many types
        raise VLForgeError(
            f"checkpoint {path}: cannot be loaded with weights_only=True ({type(err).__name__})"
        ) from None


def read_checkpoint_state_dict(checkpoint: str | Path) -> dict[str, torch.Tensor]:
    """The LitModule's full state dict from a Lightning `.ckpt` file (plain or DDP) or a DeepSpeed ZeRO checkpoint
    folder (shards merged to fp32 with deepspeed's zero_to_fp32)."""
    path = Path(checkpoint)
    if path.is_file():
        content = _safe_load(path)
        if not isinstance(content, dict) or "state_dict" not in content:
            raise VLForgeError(f"checkpoint {path}: no 'state_dict' entry (not a Lightning checkpoint)")
        return dict(content["state_dict"])
    if path.is_dir():
        return _merge_zero_shards(path)
    raise VLForgeError(f"checkpoint {path}: no such file or folder")


def _merge_zero_shards(folder: Path) -> dict[str, torch.Tensor]:
    """DeepSpeed's zero_to_fp32 loads its files with weights_only=False; every file is first proven loadable with
    weights_only=True (tensors, plain containers and three DeepSpeed data classes), so nothing in it can run code."""
    shards = sorted(folder.rglob("*.pt"))
    if not shards:
        raise VLForgeError(f"checkpoint {folder}: a folder without DeepSpeed *.pt shards")
    require_extra("deepspeed", f"checkpoint {folder} (DeepSpeed ZeRO shards)")
    allowed = _deepspeed_safe_globals()
    for shard in shards:
        _safe_load(shard, allowed)
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    merged = get_fp32_state_dict_from_zero_checkpoint(str(folder))
    return {key.removeprefix(_DEEPSPEED_PREFIX): value for key, value in merged.items()}


def export_checkpoint(
    checkpoint: str | Path,
    out_dir: str | Path,
    *,
    run_config: str | Path | None = None,
    submodule: str | None = None,
) -> Path:
    """Write `model.safetensors` + `config.json` for the LitModule (or its attribute `submodule`, e.g. "net") of
    `checkpoint`, taking its class_path / init_args from the run's saved config. Returns `out_dir`."""
    state = read_checkpoint_state_dict(checkpoint)
    config_path = Path(run_config) if run_config is not None else find_run_config(checkpoint)
    run = yaml.safe_load(config_path.read_text())
    module_config = (run or {}).get("model")
    if not isinstance(module_config, dict) or "class_path" not in module_config:
        raise VLForgeError(f"config {config_path}: no model.class_path")
    if submodule is not None:
        module_config = module_config.get("init_args", {}).get(submodule)
        if not isinstance(module_config, dict) or "class_path" not in module_config:
            raise VLForgeError(f"config {config_path}: model.init_args.{submodule} has no class_path")
        prefix = submodule + "."
        state = {key.removeprefix(prefix): value for key, value in state.items() if key.startswith(prefix)}
        if not state:
            raise VLForgeError(f"checkpoint {checkpoint}: no weights under '{submodule}.'")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_file(_unshare(state), str(out / WEIGHTS_FILE))
    record = {
        "class_path": module_config["class_path"],
        "init_args": module_config.get("init_args") or {},
        "exported_from": str(Path(checkpoint).resolve()),
        "submodule": submodule,
    }
    (out / CONFIG_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return out


def _unshare(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses tensors sharing memory (tied weights): give each repeated storage its own copy."""
    seen: set[tuple[int, int]] = set()
    result = {}
    for key, value in state.items():
        value = value.detach().cpu()
        ident = (value.untyped_storage().data_ptr(), value.storage_offset())
        result[key] = value.clone().contiguous() if ident in seen or not value.is_contiguous() else value
        seen.add(ident)
    return result


def instantiate(config: Any) -> Any:
    """Build {"class_path": "pkg.mod.Class", "init_args": {...}} recursively (nested class_path dicts too)."""
    if isinstance(config, dict) and "class_path" in config:
        module_name, _, class_name = config["class_path"].rpartition(".")
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError) as err:
            raise VLForgeError(f"class_path {config['class_path']}: cannot be imported ({err})") from None
        return cls(**{key: instantiate(value) for key, value in (config.get("init_args") or {}).items()})
    if isinstance(config, dict):
        return {key: instantiate(value) for key, value in config.items()}
    if isinstance(config, list):
        return [instantiate(value) for value in config]
    return config


def load_exported(export_dir: str | Path, *, strict: bool = True) -> nn.Module:
    """The exported module, built from config.json and filled from model.safetensors (no Lightning needed)."""
    folder = Path(export_dir)
    if not (folder / CONFIG_FILE).is_file() or not (folder / WEIGHTS_FILE).is_file():
        raise VLForgeError(f"export {folder}: needs {CONFIG_FILE} and {WEIGHTS_FILE}")
    config = json.loads((folder / CONFIG_FILE).read_text())
    module = instantiate({"class_path": config["class_path"], "init_args": config["init_args"]})
    module.load_state_dict(load_file(str(folder / WEIGHTS_FILE)), strict=strict)
    return module
