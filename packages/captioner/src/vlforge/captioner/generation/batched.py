"""Batched caption generation with any image-text-to-text model: :mod:`vlforge.common.lm.generate` (split-and-retry
on OOM, left padding, BLIP's prompt prefix) under the captioner's name."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from PIL import Image

from vlforge.common.errors import VLForgeError
from vlforge.common.lm.generate import generate_texts, is_out_of_memory


def generate_captions(captioner_or_model: Any, processor: Any, images: Sequence[Image.Image],
                      prompts: Sequence[str] | str, decoding: dict[str, Any] | None = None,
                      batch_size: int = 8, progress: Callable[[int, int], None] | None = None) -> list[str]:
    """Caption ``images`` (one instruction per image, or one for all) in batches of ``batch_size``.

    ``captioner_or_model``: a :class:`~vlforge.captioner.captioner.Captioner` (``processor`` may then be None)
    or a transformers model with ``processor``. ``decoding``: keyword arguments of ``model.generate`` (e.g.
    the MLLM-augmented paper's Table 10: ``max_new_tokens=30, num_beams=1, do_sample=True, temperature=0.2``).
    Returns the generated texts without prompt, special tokens or surrounding whitespace (possibly "").
    ``progress(done, total)`` is called after each batch (e.g. ``Progress.advance_to``).
    """
    if not isinstance(prompts, str) and len(prompts) != len(images):
        raise VLForgeError(f"generate_captions: {len(images)} images but {len(prompts)} prompts")
    return generate_texts(captioner_or_model, processor, prompts, list(images), decoding, batch_size, progress=progress)


__all__ = ["generate_captions", "is_out_of_memory"]
