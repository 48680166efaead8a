"""Batched generation with any generative model — image-text-to-text (LLaVA, Qwen2-VL, BLIP and alike) or a text-only
causal LM — returning texts, or token ids with per-token log-probs (PPO rollouts).

Each instruction goes through the prompt style the model was trained with (:mod:`vlforge.common.lm.prompts`);
decoder-only models get left padding so that every row of a batch continues right after its own prompt; the
decoding parameters go to ``model.generate`` unchanged; special tokens are stripped from decoded texts. A batch that
runs out of memory is split in half and each half retried (down to one row, which re-raises).

Rollouts (:func:`generate_sequences`): per row, the prompt's ids (padding removed), the generated ids up to and
including the first EOS, and their log-probs log softmax(z_t)[y_t] under the model's own distribution (temperature
1, before any logits processor) — the quantity :func:`vlforge.common.lm.logprobs.token_logprobs` recomputes in a
training forward pass.

BLIP conditions on the image by cross-attention and uses its prompt as a caption prefix: its ``generate`` drops the
prompt's last token (the separator), so its output repeats the prompt minus one token. Rows of one BLIP generate call
must have prompts of equal length (its prefix handling knows no padding), so BLIP batches are grouped by prompt.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image

from vlforge.common.errors import VLForgeError
from vlforge.common.lm.prompts import prompt_text, tokenizer_of

PREFIX_MINUS_ONE_TYPES = ("blip",)  # generate() returns the prompt minus its last token, then the new tokens


@dataclass
class GeneratedSequence:
    """One row of a rollout: its text, prompt ids, generated ids and their log-probs (both [N])."""

    text: str
    prompt_ids: torch.Tensor
    response_ids: torch.Tensor
    logprobs: torch.Tensor


def is_out_of_memory(err: BaseException) -> bool:
    """True for CUDA / CPU allocation failures (torch raises them as RuntimeError subclasses)."""
    return isinstance(err, torch.cuda.OutOfMemoryError) or (
        isinstance(err, RuntimeError) and "out of memory" in str(err).lower())


def model_and_processor(holder_or_model: Any, processor: Any) -> tuple[torch.nn.Module, Any]:
    """(model, processor) from a :class:`~vlforge.common.lm.model.GenerativeModel` (or anything with ``model`` and
    ``processor``) or from a model and its processor / tokenizer."""
    model = getattr(holder_or_model, "model", None)
    if isinstance(model, torch.nn.Module) and not isinstance(holder_or_model, torch.nn.Module):
        processor = processor if processor is not None else holder_or_model.processor
    else:
        model = holder_or_model
    if processor is None or not callable(getattr(tokenizer_of(processor), "batch_decode", None)):
        raise VLForgeError("generation needs a processor or tokenizer (pass a GenerativeModel or a processor)")
    return model, processor


def _model_type(model: torch.nn.Module) -> str:
    return str(getattr(getattr(model, "config", None), "model_type", ""))


class Generator:
    """One model + processor + decoding parameters; ``__call__`` generates one batch with split-and-retry on
    OOM and returns one :class:`GeneratedSequence` per row."""

    def __init__(self, model: torch.nn.Module, processor: Any, decoding: dict[str, Any],
                 prompt_style: str = "chat", with_logprobs: bool = False) -> None:
        self.model, self.processor, self.decoding = model, processor, dict(decoding)
        self.with_logprobs = with_logprobs
        self.tokenizer = tokenizer_of(processor)
        self.prompt_style = prompt_style
        self.prefix_minus_one = _model_type(model) in PREFIX_MINUS_ONE_TYPES
        self.device = next(model.parameters()).device
        if with_logprobs and self.prefix_minus_one:
            raise VLForgeError(f"log-probs of generated tokens need a decoder-only model, not {_model_type(model)!r}")

    def encode(self, images: Sequence[Image.Image] | None, prompts: Sequence[str]) -> dict[str, Any]:
        texts = [prompt_text(self.processor, p, images is not None, self.prompt_style) for p in prompts]
        if images is not None:
            inputs = self.processor(text=texts, images=list(images), padding=True, return_tensors="pt")
        else:
            inputs = self.tokenizer(texts, padding=True, return_tensors="pt")
        return {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}

    def generate(self, images: Sequence[Image.Image] | None, prompts: Sequence[str]) -> list[GeneratedSequence]:
        inputs = self.encode(images, prompts)
        extra = {"return_dict_in_generate": True, "output_logits": True} if self.with_logprobs else {}
        output = self.model.generate(**inputs, **self.decoding, **extra)
        sequences = output.sequences if hasattr(output, "sequences") else output
        width = inputs["input_ids"].shape[1] - (1 if self.prefix_minus_one else 0)
        new = sequences[:, width:]
        logits = torch.stack(output.logits, dim=1).float() if self.with_logprobs and new.shape[1] else None
        texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        rows = []
        for row, text in enumerate(texts):
            ids = new[row]
            ends = (ids == self.tokenizer.eos_token_id).nonzero()
            length = int(ends[0]) + 1 if len(ends) else ids.numel()
            ids = ids[:length]
            logps = (torch.log_softmax(logits[row, :length], dim=-1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)
                     if logits is not None else ids.new_zeros(0, dtype=torch.float32))
            prompt = inputs["input_ids"][row][inputs["attention_mask"][row].bool()]
            rows.append(GeneratedSequence(" ".join(text.split()), prompt.cpu(), ids.cpu(), logps.cpu()))
        return rows

    def __call__(self, images: Sequence[Image.Image] | None, prompts: Sequence[str]) -> list[GeneratedSequence]:
        if self.prefix_minus_one and len(set(prompts)) > 1:
            return self._by_prompt(images, prompts)
        try:
            return self.generate(images, prompts)
        except RuntimeError as err:
            if not is_out_of_memory(err) or len(prompts) == 1:
                raise
        _release_memory(self.device)
        half = len(prompts) // 2
        first, second = (None, None) if images is None else (images[:half], images[half:])
        return self(first, prompts[:half]) + self(second, prompts[half:])

    def _by_prompt(self, images: Sequence[Image.Image] | None, prompts: Sequence[str]) -> list[GeneratedSequence]:
        out: list[GeneratedSequence | None] = [None] * len(prompts)
        for prompt in dict.fromkeys(prompts):
            rows = [i for i, p in enumerate(prompts) if p == prompt]
            chosen = None if images is None else [images[i] for i in rows]
            for row, result in zip(rows, self(chosen, [prompt] * len(rows)), strict=True):
                out[row] = result
        return out  # type: ignore[return-value]


def _release_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def generate_sequences(holder_or_model: Any, processor: Any, prompts: Sequence[str] | str,
                       images: Sequence[Image.Image] | None = None, decoding: dict[str, Any] | None = None,
                       batch_size: int = 8, prompt_style: str = "chat", with_logprobs: bool = True,
                       progress: Callable[[int, int], None] | None = None) -> list[GeneratedSequence]:
    """Generate for ``prompts`` (one per image, or one for all images), with ``images`` or text-only, in batches of
    ``batch_size``; one :class:`GeneratedSequence` per prompt. ``decoding``: keyword arguments of
    ``model.generate`` (e.g. ``max_new_tokens=30, do_sample=True, temperature=0.2``). The model is put in eval mode
    for the call and restored after; the tokenizer's padding side too. ``with_logprobs=False`` leaves ``logprobs``
    empty (no per-step logits kept). ``progress(done, total)`` is called after each batch."""
    if batch_size < 1:
        raise VLForgeError(f"batch_size must be >= 1, got {batch_size}")
    count = len(images) if images is not None else (1 if isinstance(prompts, str) else len(prompts))
    prompts = [prompts] * count if isinstance(prompts, str) else list(prompts)
    if len(prompts) != count:
        raise VLForgeError(f"generation: {count} images but {len(prompts)} prompts")
    model, processor = model_and_processor(holder_or_model, processor)
    generator = Generator(model, processor, decoding or {}, prompt_style, with_logprobs)
    was_training, padding_side = model.training, generator.tokenizer.padding_side
    model.eval()
    generator.tokenizer.padding_side = "left"
    try:
        with torch.inference_mode():
            out: list[GeneratedSequence] = []
            for start in range(0, count, batch_size):
                chunk = None if images is None else images[start:start + batch_size]
                out += generator(chunk, prompts[start:start + batch_size])
                if progress is not None:
                    progress(len(out), count)
        return out
    finally:
        generator.tokenizer.padding_side = padding_side
        model.train(was_training)


def generate_texts(holder_or_model: Any, processor: Any, prompts: Sequence[str] | str,
                   images: Sequence[Image.Image] | None = None, decoding: dict[str, Any] | None = None,
                   batch_size: int = 8, prompt_style: str = "chat",
                   progress: Callable[[int, int], None] | None = None) -> list[str]:
    """The generated texts of :func:`generate_sequences` (no prompt, special tokens or surrounding whitespace)."""
    return [s.text for s in generate_sequences(holder_or_model, processor, prompts, images, decoding, batch_size,
                                               prompt_style, with_logprobs=False, progress=progress)]


def generate_for_examples(holder_or_model: Any, processor: Any, examples: Sequence[dict[str, Any]],
                          decoding: dict[str, Any] | None = None, prompt_style: str = "chat") -> list[str]:
    """The texts generated for plain examples ``{image?, instruction}`` in their order, those with an image and
    those without generated apart (a validation set may mix them)."""
    outputs = [""] * len(examples)
    for with_image in (True, False):
        chosen = [i for i, e in enumerate(examples) if (e.get("image") is not None) is with_image]
        if not chosen:
            continue
        images = [examples[i]["image"] for i in chosen] if with_image else None
        texts = generate_texts(holder_or_model, processor, [examples[i]["instruction"] for i in chosen], images,
                               decoding, prompt_style=prompt_style)
        for i, text in zip(chosen, texts, strict=True):
            outputs[i] = text
    return outputs
