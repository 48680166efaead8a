"""Export any training checkpoint (plain, DDP, DeepSpeed ZeRO shards) into one safetensors file plus the model's config
as JSON, and load that back without Lightning.

Layout of an export folder:
    model.safetensors   the weights (float tensors as trained; ZeRO shards merged to fp32)
    config.json         {"class_path": ..., "init_args": {...}} of the exported module, plus where it came from
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors.torch import load_file, save
from torch import nn

from vlforge.common.atomic_file import atomic_output, check_output_path, write_atomically
from vlforge.common.errors import VLForgeError
from vlforge.common.extras import require_extra
from vlforge.common.runs import find_run_config
from vlforge.common.store.images import open_regular_file, read_regular_file

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


def zero_checkpoint_tag(folder: Path) -> str:
    """The tag (sub-folder) named by a ZeRO checkpoint folder's ``latest`` file, refused unless it is one plain
    name of a real sub-folder (no '/', no '..', no symlink leaving the folder)."""
    latest = folder / "latest"
    try:
        tag = read_regular_file(latest).decode("utf-8").strip()
    except FileNotFoundError:
        raise VLForgeError(f"checkpoint {folder}: a DeepSpeed folder needs a 'latest' file naming its tag") from None
    except (OSError, UnicodeDecodeError) as err:
        raise VLForgeError(f"checkpoint {folder}: its 'latest' file cannot be read ({err})") from None
    tag_dir = folder / tag
    if (not tag or tag in (".", "..") or "/" in tag or "\\" in tag or "\x00" in tag or tag_dir.is_symlink()
            or not tag_dir.is_dir() or tag_dir.resolve().parent != folder.resolve()):
        raise VLForgeError(f"checkpoint {folder}: 'latest' names {tag[:80]!r}, not a sub-folder of the checkpoint")
    return tag


def check_zero_checkpoint(folder: Path) -> str:
    """The tag of a DeepSpeed ZeRO checkpoint folder, once it is proven safe for DeepSpeed's loaders (which unpickle
    with weights_only=False): ``latest`` names a sub-folder (``zero_checkpoint_tag``), and every file they can read
    there (its *.pt shards) lies inside the folder (no symlink out) and loads with weights_only=True (tensors,
    plain containers and three DeepSpeed data classes), so nothing in it can run code."""
    tag = zero_checkpoint_tag(folder)
    real_folder = folder.resolve()
    shards = sorted((folder / tag).glob("*.pt"))
    if not shards:
        raise VLForgeError(f"checkpoint {folder}: a folder without DeepSpeed *.pt shards")
    require_extra("deepspeed", f"checkpoint {folder} (DeepSpeed ZeRO shards)")
    allowed = _deepspeed_safe_globals()
    for shard in shards:
        if shard.resolve().parent != real_folder / tag:
            raise VLForgeError(f"checkpoint {folder}: shard {shard.name} is a link to a file outside the folder")
        _safe_load(shard, allowed)
    return tag


def _merge_zero_shards(folder: Path) -> dict[str, torch.Tensor]:
    """All weights of a ZeRO folder merged to fp32 by DeepSpeed's zero_to_fp32, after ``check_zero_checkpoint``."""
    tag = check_zero_checkpoint(folder)
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    merged = get_fp32_state_dict_from_zero_checkpoint(str(folder), tag=tag)
    return {key.removeprefix(_DEEPSPEED_PREFIX): value for key, value in merged.items()}


LIGHTNING_CKPT_KEYWORDS = ("last", "best", "hpc", "registry")


def check_ckpt_path(value: Any) -> None:
    """Validate a ``--ckpt_path`` before any training starts: Lightning's keywords pass; a path must be a regular
    file holding a torch checkpoint archive or a DeepSpeed ZeRO folder proven safe by ``check_zero_checkpoint``
    (before DeepSpeed's own loader unpickles it); anything else is a one-line VLForgeError naming it."""
    if value is None or value in LIGHTNING_CKPT_KEYWORDS or (isinstance(value, str) and value.startswith("registry:")):
        return
    if not isinstance(value, str | os.PathLike) or not os.fspath(value):
        raise VLForgeError(f"--ckpt_path {value!r} must be a checkpoint path or one of "
                           f"{', '.join(LIGHTNING_CKPT_KEYWORDS)}")
    path = Path(value)
    if not path.exists():
        raise VLForgeError(f"--ckpt_path {os.fspath(value)!r}: no such file or folder")
    if path.is_dir():
        check_zero_checkpoint(path)
        return
    try:
        with open_regular_file(path) as f:
            is_archive = zipfile.is_zipfile(f)
    except OSError as err:
        raise VLForgeError(f"--ckpt_path {os.fspath(value)!r} cannot be read: {err.strerror or err}") from None
    if not is_archive:
        raise VLForgeError(f"--ckpt_path {os.fspath(value)!r} is not a checkpoint (not a torch.save archive)")


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
    inputs = [checkpoint, config_path]
    for name in (WEIGHTS_FILE, CONFIG_FILE):
        check_output_path(out / name, inputs)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_output(out / WEIGHTS_FILE, inputs, binary=True) as weights:
        weights.write(save(_unshare(state)))
    record = {
        "class_path": module_config["class_path"],
        "init_args": module_config.get("init_args") or {},
        "exported_from": str(Path(checkpoint).resolve()),
        "submodule": submodule,
    }
    write_atomically(out / CONFIG_FILE, json.dumps(record, indent=2) + "\n", inputs)
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


ALLOWED_CLASS_PREFIXES: list[str] = ["vlforge.", "torch.nn."]


def allow_classes(prefix: str) -> None:
    """Let ``instantiate`` build classes defined in modules starting with ``prefix`` (e.g. a test's toy module)."""
    if prefix not in ALLOWED_CLASS_PREFIXES:
        ALLOWED_CLASS_PREFIXES.append(prefix)


def allowed_class(class_path: Any) -> type:
    """The class a config's class_path names, only if it is a class DEFINED in an allowed module (vlforge's own or
    torch.nn; see ``allow_classes``); a function, a module or a class merely imported into an allowed module (e.g.
    ``subprocess.Popen`` seen through a vlforge module) is refused, so an artefact can never name code to run."""
    if not isinstance(class_path, str) or not any(class_path.startswith(p) for p in ALLOWED_CLASS_PREFIXES):
        raise VLForgeError(f"class_path {str(class_path)[:120]!r} is not allowed: artefacts may only name classes of "
                           f"{', '.join(ALLOWED_CLASS_PREFIXES)}")
    module_name, _, class_name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as err:
        raise VLForgeError(f"class_path {class_path}: cannot be imported ({err})") from None
    defined_in = getattr(cls, "__module__", None) or ""
    if not inspect.isclass(cls) or not any((defined_in + ".").startswith(p) for p in ALLOWED_CLASS_PREFIXES):
        raise VLForgeError(f"class_path {class_path} is not allowed: it names {type(cls).__name__} from "
                           f"{defined_in or 'an unknown module'!r}, not a class defined in an allowed module")
    return cls


def instantiate(config: Any) -> Any:
    """Build {"class_path": "pkg.mod.Class", "init_args": {...}} recursively (nested class_path dicts too); only
    allow-listed classes (``allowed_class``)."""
    if isinstance(config, dict) and "class_path" in config:
        cls = allowed_class(config["class_path"])
        init_args = config.get("init_args") or {}
        if not isinstance(init_args, dict):
            raise VLForgeError(f"class_path {config['class_path']}: init_args must be a mapping")
        return cls(**{key: instantiate(value) for key, value in init_args.items()})
    if isinstance(config, dict):
        return {key: instantiate(value) for key, value in config.items()}
    if isinstance(config, list):
        return [instantiate(value) for value in config]
    return config


def load_exported(export_dir: str | Path, *, strict: bool = True) -> nn.Module:
    """The exported module, built from config.json and filled from model.safetensors (no Lightning needed)."""
    folder = Path(export_dir)
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        if not (folder / name).is_file() or (folder / name).resolve().parent != folder.resolve():
            raise VLForgeError(f"export {folder}: needs {CONFIG_FILE} and {WEIGHTS_FILE} as files inside it")
    try:
        config = json.loads(read_regular_file(folder / CONFIG_FILE).decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise VLForgeError(f"export {folder}: {CONFIG_FILE} is not readable JSON ({err})") from None
    if not isinstance(config, dict) or "class_path" not in config:
        raise VLForgeError(f"export {folder}: {CONFIG_FILE} has no class_path")
    module = instantiate({"class_path": config["class_path"], "init_args": config.get("init_args") or {}})
    module.load_state_dict(load_file(str(folder / WEIGHTS_FILE)), strict=strict)
    return module
