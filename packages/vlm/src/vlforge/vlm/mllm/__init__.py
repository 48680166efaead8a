"""LLaVA-style MLLMs: build one from a vision tower and a causal LM, export it, read its data, evaluate it."""

from vlforge.vlm.mllm.builder import build_llava

__all__ = ["build_llava"]
