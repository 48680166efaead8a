"""Load the vision tower of an MLLM: a Hugging Face CLIP or SigLIP model or vision-model folder, or a hub name
(a full CLIP / SigLIP checkpoint gives its vision half; a vlforge-vlm CLIP exported with
``vlforge-vlm export --format hf-vision`` is a CLIP vision folder).

The image processor is the folder's own when it has one, else the family's default at the tower's image size
(CLIP: short-side resize, centre crop, CLIP normalisation; SigLIP: square resize, mean = std = 0.5).

``random_vision_tower`` builds a randomly initialised tower of a family from config fields (tiny ShapesWorld runs).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import transformers
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    CLIPVisionConfig,
    CLIPVisionModel,
    PreTrainedModel,
    SiglipImageProcessor,
    SiglipVisionConfig,
    SiglipVisionModel,
)

from vlforge.common.errors import VLForgeError
from vlforge.common.presets.config_fields import make_config
from vlforge.common.presets.llava import clip_image_processor

RANDOM_FAMILIES = {"clip": (CLIPVisionConfig, CLIPVisionModel), "siglip": (SiglipVisionConfig, SiglipVisionModel)}
# config model_type -> (family, vision model class)
VISION_FAMILIES = {
    "clip": ("clip", CLIPVisionModel),
    "clip_vision_model": ("clip", CLIPVisionModel),
    "siglip": ("siglip", SiglipVisionModel),
    "siglip_vision_model": ("siglip", SiglipVisionModel),
}


@dataclass
class VisionTower:
    """A loaded vision tower: ``family`` ("clip" prepends a CLS token, "siglip" has none), its model and image
    processor."""

    family: str
    model: PreTrainedModel
    image_processor: object


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def default_image_processor(family: str, image_size: int):
    if family == "clip":
        return clip_image_processor(image_size)
    return SiglipImageProcessor(size={"height": image_size, "width": image_size})


def load_vision_tower(source: str, trust_remote_code: bool = False, dtype: torch.dtype = torch.float32,
                      ) -> VisionTower:
    """The vision tower of ``source`` in ``dtype`` (module docstring); other model types are refused with their
    name."""
    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise VLForgeError(f"vision {source!r}: cannot be loaded ({_first_line(exc)})") from None
    if config.model_type not in VISION_FAMILIES:
        raise VLForgeError(f"vision {source!r}: a {config.model_type!r} model; a CLIP or SigLIP vision tower is "
                           f"needed ({', '.join(sorted(VISION_FAMILIES))})")
    family, model_class = VISION_FAMILIES[config.model_type]
    verbosity = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()  # a full CLIP / SigLIP checkpoint's text half goes unused
    try:
        model = model_class.from_pretrained(source, trust_remote_code=trust_remote_code, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise VLForgeError(f"vision {source!r}: cannot be loaded ({_first_line(exc)})") from None
    finally:
        transformers.logging.set_verbosity(verbosity)
    try:
        image_processor = AutoImageProcessor.from_pretrained(source, trust_remote_code=trust_remote_code)
    except (OSError, ValueError):  # no preprocessor_config.json: the family's default
        image_processor = default_image_processor(family, model.config.image_size)
    return VisionTower(family, model, image_processor)


def random_vision_tower(family: str, fields: dict, dtype: torch.dtype = torch.float32, seed: int = 0) -> VisionTower:
    """A randomly initialised ``family`` ("clip" or "siglip") vision tower of config ``fields`` (image_size,
    patch_size, hidden_size, ...), drawn from ``seed`` without touching the global RNG."""
    if family not in RANDOM_FAMILIES:
        raise VLForgeError(f"vision {family!r} with vision_config: the family must be one of "
                           f"{', '.join(RANDOM_FAMILIES)}")
    config_class, model_class = RANDOM_FAMILIES[family]
    config = make_config(config_class, "vision_config", fields)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_class(config).to(dtype)
    return VisionTower(family, model, default_image_processor(family, config.image_size))
