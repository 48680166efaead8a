"""The model of one LLaVA training stage: a LLaVA built from a vision tower and a causal LM (``build_llava``), or,
from the second stage on, the same LLaVA started from the previous stage's checkpoint (``init_from``), with the
stage's freezing policy (LLaVA-1.5 / the ultra-detailed caption paper's Tables 7-8: pre-align trains the projector,
pre-train the projector, the LLM and the vision tower's last k layers, instruct the projector and the LLM).

``vision`` is a CLIP / SigLIP folder or hub name, or a family name ("clip", "siglip") with ``vision_config`` for a
randomly initialised tower (tiny ShapesWorld runs). A checkpoint of another architecture (other LM, other projector
size, other image-token count) is refused in one line naming the stage's and the checkpoint's parts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from vlforge.common.errors import VLForgeError
from vlforge.common.lm.loading import weights_from
from vlforge.common.lm.model import GenerativeModel
from vlforge.common.lm.policy import FreezePolicy
from vlforge.common.runs import last_checkpoint, versions
from vlforge.vlm.mllm.builder import build_llava

SPEC_KEY = "llava_stage_spec"
ARCHITECTURE_FIELDS = ("projector", "lm_architecture", "vision_architecture", "image_tokens")


def stage_spec(vision: str, lm: str, model: Any) -> dict[str, Any]:
    """What a stage's checkpoint must agree on with the next stage: names (for the message) and architecture."""
    config = model.config
    text, vis = config.text_config, config.vision_config
    layers = getattr(text, "num_hidden_layers", getattr(text, "n_layer", "?"))
    width = getattr(text, "hidden_size", getattr(text, "n_embd", "?"))
    vocab = model.get_input_embeddings().weight.shape[0]
    return {"vision": vision, "lm": lm,
            "projector": f"{vis.hidden_size}->{width}->{width}",
            "lm_architecture": f"{text.model_type} {layers}x{width}, vocab {vocab}",
            "vision_architecture": f"{vis.model_type} {vis.num_hidden_layers}x{vis.hidden_size}, "
                                   f"{vis.image_size}px/{vis.patch_size}",
            "image_tokens": int(config.image_seq_length)}


def describe_spec(spec: dict[str, Any]) -> str:
    return (f"vision {spec['vision']!r} ({spec['vision_architecture']}), lm {spec['lm']!r} "
            f"({spec['lm_architecture']}), projector {spec['projector']}, {spec['image_tokens']} image tokens")


def resolve_init_from(init_from: str | os.PathLike) -> Path:
    """A checkpoint file (or ZeRO folder), or a run folder (``runs/<name>``: its newest ``last.ckpt``)."""
    path = Path(init_from)
    if path.is_dir() and versions(path):
        return last_checkpoint(path)
    if not path.exists():
        raise VLForgeError(f"init_from {os.fspath(init_from)!r}: no such checkpoint or run folder")
    return path


def checkpoint_spec(checkpoint: Path) -> dict[str, Any] | None:
    """The stage spec a vlforge LLaVA stage saved into ``checkpoint`` (None for other checkpoints and ZeRO
    folders; their weights are still checked by name and shape)."""
    if checkpoint.is_dir():
        return None
    try:
        saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError) as exc:
        raise VLForgeError(f"init_from {checkpoint}: cannot be read ({str(exc).splitlines()[0]})") from None
    spec = saved.get(SPEC_KEY) if isinstance(saved, dict) else None
    return spec if isinstance(spec, dict) else None


class LlavaStageModel(GenerativeModel):
    """A LLaVA of ``vision`` + ``lm`` (``build_llava`` options below) with the stage's ``freeze`` policy (default:
    projector + LLM train). ``init_from`` names the previous stage's checkpoint (or run folder); its weights are
    loaded by :meth:`load_init_weights`, which the stage's LitModule calls when the run starts (``setup``), so that
    a config instantiates, and a finished stage's checkpoint rebuilds, without the previous stage's files. ``spec``
    says what the LLaVA is."""

    def __init__(self, vision: str, lm: str, init_from: str | None = None, freeze: FreezePolicy | None = None,
                 vision_config: dict[str, Any] | None = None, vision_feature_layer: int = -2,
                 vision_feature_select_strategy: str | None = None, dtype: str = "float32",
                 trust_remote_code: bool = False, seed: int = 0) -> None:
        model, processor = build_llava(vision, lm, vision_config=vision_config,
                                       vision_feature_layer=vision_feature_layer,
                                       vision_feature_select_strategy=vision_feature_select_strategy, dtype=dtype,
                                       trust_remote_code=trust_remote_code, seed=seed)
        self.spec = stage_spec(vision, lm, model)
        self.init_from = init_from
        self._setup(model.train(), processor, f"llava({vision} + {lm})", "llava", freeze or FreezePolicy(), None)

    def load_init_weights(self) -> Path | None:
        """Load ``init_from``'s weights (refusing a checkpoint of another architecture in one line naming both);
        returns the checkpoint loaded, None without ``init_from``."""
        if self.init_from is None:
            return None
        checkpoint = resolve_init_from(self.init_from)
        previous = checkpoint_spec(checkpoint)
        if previous is not None and any(previous.get(k) != self.spec[k] for k in ARCHITECTURE_FIELDS):
            raise VLForgeError(f"init_from {os.fspath(checkpoint)}: the checkpoint's LLaVA "
                               f"({describe_spec(previous)}) is not this stage's ({describe_spec(self.spec)})")
        weights_from(checkpoint, self.model)
        return checkpoint
