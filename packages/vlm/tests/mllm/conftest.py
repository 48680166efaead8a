"""Tiny vision towers saved as Hugging Face folders, images and prompts shared by the MLLM tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import CLIPVisionConfig, CLIPVisionModel, SiglipVisionConfig, SiglipVisionModel

TINY_VISION = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
               "image_size": 32, "patch_size": 8}
VISION_CLASSES = {"clip": (CLIPVisionConfig, CLIPVisionModel), "siglip": (SiglipVisionConfig, SiglipVisionModel)}


def save_vision_tower(folder: Path, family: str, seed: int = 0) -> Path:
    """A randomly initialised tiny CLIP / SigLIP vision model saved with ``save_pretrained`` (no image processor:
    the builder picks the family's default)."""
    config_class, model_class = VISION_CLASSES[family]
    torch.manual_seed(seed)
    model_class(config_class(**TINY_VISION)).save_pretrained(folder)
    return folder


def random_image(seed: int, size: tuple[int, int] = (40, 48)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8))


def user_prompt(processor, question: str) -> str:
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    return processor.apply_chat_template(messages, add_generation_prompt=True)


@pytest.fixture(scope="session")
def towers(tmp_path_factory) -> dict[str, str]:
    """Tiny CLIP and SigLIP vision folders."""
    root = tmp_path_factory.mktemp("towers")
    return {family: str(save_vision_tower(root / family, family)) for family in VISION_CLASSES}


@pytest.fixture
def image_inputs():
    """``processor``'s inputs for one image and a question in the user turn."""
    def make(processor, question: str = "What colour is the circle?", seed: int = 0):
        return processor(text=[user_prompt(processor, question)], images=[random_image(seed)], return_tensors="pt")
    return make
