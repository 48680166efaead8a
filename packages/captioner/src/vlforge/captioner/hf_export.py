"""A trained captioner as a Hugging Face folder: ``AutoModelForImageTextToText.from_pretrained(<out>)`` and
``AutoProcessor.from_pretrained(<out>)`` load it, its chat template kept, the layout vLLM and transformers'
image-text-to-text pipeline serve.

The captioner is rebuilt from the run's saved config (``model.init_args.captioner``, the ``Captioner`` the run
trained: a preset or a hub model, its freezing and LoRA), filled with the checkpoint's captioner weights
(``weights_from``: the ``model.*`` entries; a preference run's frozen reference copy is ignored), LoRA adapters
merged into the LLM, and written with ``save_pretrained`` (safetensors) beside the processor.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import yaml

from vlforge.captioner.captioner import Captioner
from vlforge.common.errors import VLForgeError
from vlforge.common.lm.loading import save_pretrained, weights_from
from vlforge.common.lm.policy import FreezePolicy, LoraSettings
from vlforge.common.runs import find_run_config


def captioner_from_checkpoint(checkpoint: str | os.PathLike, run_config: str | os.PathLike | None = None
                              ) -> Captioner:
    """The run's Captioner with the checkpoint's trained weights."""
    config_path = Path(run_config) if run_config is not None else find_run_config(checkpoint)
    run = yaml.safe_load(Path(config_path).read_text(encoding="utf-8")) or {}
    spec = ((run.get("model") or {}).get("init_args") or {}).get("captioner")
    if not isinstance(spec, dict) or spec.get("class_path") != "vlforge.captioner.captioner.Captioner":
        raise VLForgeError(f"config {config_path}: model.init_args.captioner is not a "
                           "vlforge.captioner.captioner.Captioner (the captioner to export)")
    args = dict(spec.get("init_args") or {})
    for name, settings in (("freeze", FreezePolicy), ("lora", LoraSettings)):
        if isinstance(args.get(name), dict):
            args[name] = settings(**args[name])
    try:
        captioner = Captioner(**args)
    except TypeError as err:
        raise VLForgeError(f"config {config_path}: model.init_args.captioner.init_args: {err}") from None
    weights_from(checkpoint, captioner.model)
    return captioner


def export_hf_captioner(captioner: Captioner, out_dir: str | os.PathLike,
                        inputs: Sequence[str | os.PathLike] = ()) -> Path:
    """Write ``captioner``'s model (LoRA adapters merged into a copy) and processor (chat template included) to
    ``out_dir`` (:func:`vlforge.common.lm.loading.save_pretrained`: atomically, never onto one of ``inputs``)."""
    return save_pretrained(captioner.model, captioner.processor, out_dir, inputs)


def export_hf_captioner_checkpoint(checkpoint: str | os.PathLike, out_dir: str | os.PathLike,
                                   run_config: str | os.PathLike | None = None) -> Path:
    return export_hf_captioner(captioner_from_checkpoint(checkpoint, run_config), out_dir, [checkpoint, run_config])
