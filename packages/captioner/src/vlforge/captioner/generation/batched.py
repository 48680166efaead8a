"""Batched caption generation with any image-text-to-text model (LLaVA, Qwen2-VL, BLIP and alike).

Each instruction goes through the processor's chat template (the same prompt the captioner was trained on);
decoder-only models get left padding so that every row of a batch continues right after its own prompt; the
decoding parameters go to ``model.generate`` unchanged; special tokens are stripped from the decoded text.
A batch that runs out of memory is split in half and each half retried (down to one image, which re-raises).

BLIP conditions on the image by cross-attention and uses its prompt as a caption prefix: its ``generate``
drops the prompt's last token (the separator), so its output repeats the prompt minus one token. Rows of one
BLIP generate call must have prompts of equal length (its prefix handling knows no padding), so BLIP batches
are grouped by prompt.
"""

from __future__ import annotations

import gc
from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

from vlforge.captioner.collate import chat_prompt
from vlforge.common.errors import VLForgeError

PREFIX_MINUS_ONE_TYPES = ("blip",)  # generate() returns the prompt minus its last token, then the new tokens


def is_out_of_memory(err: BaseException) -> bool:
    """True for CUDA / CPU allocation failures (torch raises them as RuntimeError subclasses)."""
    return isinstance(err, torch.cuda.OutOfMemoryError) or (
        isinstance(err, RuntimeError) and "out of memory" in str(err).lower()
    )


def _model_and_processor(captioner_or_model: Any, processor: Any) -> tuple[torch.nn.Module, Any]:
    model = getattr(captioner_or_model, "model", None)
    if (
        model is not None
        and isinstance(model, torch.nn.Module)
        and not isinstance(captioner_or_model, torch.nn.Module)
    ):
        processor = processor if processor is not None else captioner_or_model.processor
    else:
        model = captioner_or_model
    if processor is None or getattr(processor, "tokenizer", None) is None:
        raise VLForgeError(
            "generate_captions needs a processor with a tokenizer (pass a Captioner or a processor)"
        )
    return model, processor


def _model_type(model: torch.nn.Module) -> str:
    return str(getattr(getattr(model, "config", None), "model_type", ""))


class _Generator:
    """One model + processor + decoding parameters; ``__call__`` captions one batch with split-and-retry on
    OOM."""

    def __init__(self, model: torch.nn.Module, processor: Any, decoding: dict[str, Any]) -> None:
        self.model, self.processor, self.decoding = model, processor, dict(decoding)
        self.tokenizer = processor.tokenizer
        self.prefix_minus_one = _model_type(model) in PREFIX_MINUS_ONE_TYPES
        self.device = next(model.parameters()).device

    def encode(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> dict[str, Any]:
        texts = [chat_prompt(self.processor, p) for p in prompts]
        inputs = self.processor(text=texts, images=list(images), padding=True, return_tensors="pt")
        return {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}

    def generate(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> list[str]:
        inputs = self.encode(images, prompts)
        output = self.model.generate(**inputs, **self.decoding)
        sequences = output.sequences if hasattr(output, "sequences") else output
        prompt_length = inputs["input_ids"].shape[1] - (1 if self.prefix_minus_one else 0)
        texts = self.tokenizer.batch_decode(sequences[:, prompt_length:], skip_special_tokens=True)
        return [" ".join(t.split()) for t in texts]

    def __call__(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> list[str]:
        if self.prefix_minus_one and len(set(prompts)) > 1:
            return self._by_prompt(images, prompts)
        try:
            return self.generate(images, prompts)
        except RuntimeError as err:
            if not is_out_of_memory(err) or len(images) == 1:
                raise
        _release_memory(self.device)
        half = len(images) // 2
        return self(images[:half], prompts[:half]) + self(images[half:], prompts[half:])

    def _by_prompt(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> list[str]:
        out: list[str] = [""] * len(prompts)
        for prompt in dict.fromkeys(prompts):
            rows = [i for i, p in enumerate(prompts) if p == prompt]
            for row, text in zip(rows, self([images[i] for i in rows], [prompt] * len(rows)), strict=True):
                out[row] = text
        return out


def _release_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def generate_captions(
    captioner_or_model: Any,
    processor: Any,
    images: Sequence[Image.Image],
    prompts: Sequence[str] | str,
    decoding: dict[str, Any] | None = None,
    batch_size: int = 8,
) -> list[str]:
    """Caption ``images`` (one instruction per image, or one for all) in batches of ``batch_size``.

    ``captioner_or_model``: a :class:`~vlforge.captioner.captioner.Captioner` (``processor`` may then be None)
    or a transformers model with ``processor``. ``decoding``: keyword arguments of ``model.generate`` (e.g.
    the MLLM-augmented paper's Table 10: ``max_new_tokens=30, num_beams=1, do_sample=True, temperature=0.2``).
    Returns the generated texts without prompt, special tokens or surrounding whitespace (possibly ""). The
    model is put in eval mode for the call and restored after; the tokenizer's padding side too.
    """
    if batch_size < 1:
        raise VLForgeError(f"batch_size must be >= 1, got {batch_size}")
    prompts = [prompts] * len(images) if isinstance(prompts, str) else list(prompts)
    if len(prompts) != len(images):
        raise VLForgeError(f"generate_captions: {len(images)} images but {len(prompts)} prompts")
    model, processor = _model_and_processor(captioner_or_model, processor)
    generator = _Generator(model, processor, decoding or {})
    was_training, padding_side = model.training, generator.tokenizer.padding_side
    model.eval()
    generator.tokenizer.padding_side = "left"
    try:
        with torch.inference_mode():
            captions: list[str] = []
            for start in range(0, len(images), batch_size):
                captions += generator(images[start : start + batch_size], prompts[start : start + batch_size])
        return captions
    finally:
        generator.tokenizer.padding_side = padding_side
        model.train(was_training)
