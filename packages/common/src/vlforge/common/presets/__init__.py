"""Tiny presets of real architectures (built from YAML, random init), tokenizers that need no download, and loading
of real pretrained models by hub name or local path. See ``registry.build_preset`` and
``pretrained.load_pretrained``."""

from vlforge.common.presets.open_clip_models import TINY_OPEN_CLIP_CONFIGS, register_tiny_open_clip_configs
from vlforge.common.presets.pretrained import load_pretrained
from vlforge.common.presets.registry import build_preset, load_preset_config, preset_names, preset_path
from vlforge.common.presets.tokenizer import minilm_model_dir, minilm_tokenizer, open_clip_tokenizer, shapes_tokenizer

__all__ = ["build_preset", "load_preset_config", "preset_names", "preset_path", "load_pretrained",
           "TINY_OPEN_CLIP_CONFIGS", "register_tiny_open_clip_configs", "shapes_tokenizer", "open_clip_tokenizer",
           "minilm_model_dir", "minilm_tokenizer"]
