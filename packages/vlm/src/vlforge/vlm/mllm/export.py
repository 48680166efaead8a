"""``vlforge-vlm export --format hf-llava``: an MLLM Lightning checkpoint as a Hugging Face LLaVA folder.

The LitModule is rebuilt from the run's saved config (``model:`` with its nested ``class_path`` entries, every one
inside the ``vlforge.`` namespace, built by jsonargparse as LightningCLI built it), filled from the checkpoint
(strictly: every weight by name and shape), and its network (``.model``, LoRA adapters merged into a copy) is written
with its processor (``.processor``) by ``vlforge.common.lm.loading.save_pretrained``: config, weights, generation
config, tokenizer, chat template and processor configuration (image processor included), the folder
``AutoModelForImageTextToText`` / ``AutoProcessor`` load (tested; vLLM reads the same LLaVA layout, not tested here:
no GPU). The captioner's SFT and preference
checkpoints of its ``llava`` presets are such checkpoints.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from jsonargparse import ArgumentError, ArgumentParser
from transformers import LlavaForConditionalGeneration

from vlforge.common.checkpoint import allowed_class, read_checkpoint_state_dict
from vlforge.common.errors import VLForgeError
from vlforge.common.lm.loading import save_pretrained
from vlforge.common.runs import find_run_config

ALLOWED_NAMESPACE = "vlforge."


def class_paths(config: Any) -> list[str]:
    """Every ``class_path`` in a nested config."""
    if isinstance(config, dict):
        own = [config["class_path"]] if isinstance(config.get("class_path"), str) else []
        return own + [path for value in config.values() for path in class_paths(value)]
    if isinstance(config, list):
        return [path for value in config for path in class_paths(value)]
    return []


def instantiate_module(module_config: dict[str, Any], where: Path) -> torch.nn.Module:
    """The LitModule of a run config's ``model:`` entry, built by jsonargparse as LightningCLI built it (nested
    class_paths, dataclass arguments from the type hints)."""
    parser = ArgumentParser(exit_on_error=False, allow_abbrev=False)
    parser.add_subclass_arguments(torch.nn.Module, "model", required=True)
    try:
        return parser.instantiate_classes(parser.parse_object({"model": module_config})).model
    except (ArgumentError, TypeError, ValueError) as exc:
        detail = " ".join(str(exc).split())[:300]
        raise VLForgeError(f"run config {where}: model cannot be built ({detail})") from None


def lit_module_from_checkpoint(checkpoint: str | os.PathLike, run_config: str | os.PathLike | None = None) -> Any:
    """The LitModule of ``checkpoint`` rebuilt from its run config and loaded strictly from the checkpoint."""
    config_path = Path(run_config) if run_config is not None else find_run_config(checkpoint)
    try:
        run = yaml.safe_load(config_path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise VLForgeError(f"run config {config_path}: cannot be read ({str(exc).splitlines()[0]})") from None
    module_config = run.get("model") if isinstance(run, dict) else None
    if not isinstance(module_config, dict) or "class_path" not in module_config:
        raise VLForgeError(f"run config {config_path}: no model.class_path (the LitModule to rebuild)")
    outside = [path for path in class_paths(module_config) if not path.startswith(ALLOWED_NAMESPACE)]
    if outside:
        raise VLForgeError(f"run config {config_path}: class_path {outside[0]!r} is outside the "
                           f"{ALLOWED_NAMESPACE.rstrip('.')} namespace; it is not instantiated")
    for path in class_paths(module_config):  # and each must be a class defined there, not a re-exported callable
        try:
            allowed_class(path)
        except VLForgeError as err:
            raise VLForgeError(f"run config {config_path}: {err}") from None
    module = instantiate_module(module_config, config_path)
    state = read_checkpoint_state_dict(checkpoint)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:300]
        raise VLForgeError(f"checkpoint {os.fspath(checkpoint)} does not fit the model of {config_path}: "
                           f"{detail}") from None
    return module


def export_hf_llava(module: Any, out_dir: str | os.PathLike, name: str = "the module",
                    inputs: Sequence[str | os.PathLike] = ()) -> Path:
    """Write ``module.model`` (a ``LlavaForConditionalGeneration``, LoRA adapters merged into a copy) and
    ``module.processor`` to ``out_dir`` (:func:`vlforge.common.lm.loading.save_pretrained`: atomically, never onto
    one of ``inputs``); returns the folder."""
    network, processor = getattr(module, "model", None), getattr(module, "processor", None)
    if network is None or processor is None:
        raise VLForgeError(f"{name}: a {type(module).__name__} without .model and .processor is not an MLLM "
                           "LitModule")
    base = network.get_base_model() if hasattr(network, "get_base_model") else network  # a PEFT (LoRA) model's
    if not isinstance(base, LlavaForConditionalGeneration):
        raise VLForgeError(f"{name}: holds a {type(base).__name__}; --format hf-llava exports a "
                           "LlavaForConditionalGeneration")
    return save_pretrained(network, processor, out_dir, inputs)


def export_hf_llava_checkpoint(checkpoint: str | os.PathLike, out_dir: str | os.PathLike,
                               run_config: str | os.PathLike | None = None) -> Path:
    """Export the LLaVA of an MLLM Lightning checkpoint (module docstring)."""
    module = lit_module_from_checkpoint(checkpoint, run_config)
    return export_hf_llava(module.eval(), out_dir, name=f"checkpoint {os.fspath(checkpoint)}",
                           inputs=[checkpoint, run_config])
