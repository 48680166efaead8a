"""Captions per second: vlforge's batched ``generate_captions`` against plain transformers generate, one
image at a time, on the same model, images and prompt, side by side in one run.

Both sides generate exactly ``--max-new-tokens`` tokens per caption (min_new_tokens = max_new_tokens,
greedy), so the work per caption is equal and only batching differs. Also reported: how many captions are
identical between the two (greedy decoding; bf16 on a GPU can flip a few near-ties under padding).

Models (random weights; nothing is downloaded):
- ``llava_tiny`` (default on CPU): the tiny LLaVA preset of vlforge.common.presets;
- ``qwen2_vl_2b`` (default on CUDA): a Qwen2-VL-2B-sized model built locally (ViT 32x1280, patch 14, 2x2
  merge; Qwen2 LM 28x1536, GQA 12/2 heads, MLP 8960; embeddings resized to the real 151,936-token
  vocabulary) on 224 px images (64 image tokens), bf16; ``--tiny-config`` builds the same code path with
  tiny sizes to check it on CPU.

    python bench/caption_generation.py --images 128 --batch-size 32 --threads 1     # CPU, tiny LLaVA
    python bench/caption_generation.py --model qwen2_vl_2b --tiny-config --images 8 --batch-size 4
    python bench/caption_generation.py --device cuda --images 256 --batch-size 64     # GPU, 2B-sized
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vlforge.captioner.collate import chat_prompt
from vlforge.captioner.generation import generate_captions
from vlforge.common.presets import build_preset, shapes_tokenizer
from vlforge.common.presets.qwen2_vl import build_qwen2_vl

PROMPT = "Describe the image."
QWEN2_VL_2B = {
    "image_size": 224,
    "patch_size": 14,
    "merge_size": 2,
    "mrope_section": (16, 24, 24),
    "vision": {"depth": 32, "embed_dim": 1280, "num_heads": 16, "mlp_ratio": 4},
    "text": {
        "hidden_size": 1536,
        "intermediate_size": 8960,
        "num_hidden_layers": 28,
        "num_attention_heads": 12,
        "num_key_value_heads": 2,
        "max_position_embeddings": 32768,
    },
}
QWEN2_VL_2B_TINY = {
    "image_size": 56,
    "patch_size": 14,
    "merge_size": 2,
    "mrope_section": (2, 3, 3),
    "vision": {"depth": 2, "embed_dim": 64, "num_heads": 4, "mlp_ratio": 2},
    "text": {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 512,
    },
}
QWEN2_VL_VOCAB = 151_936


def build_model(name: str, tiny_config: bool, device: str, dtype: torch.dtype):
    if name == "llava_tiny":
        model, processor = build_preset("llava_tiny")
        image_size = 64
    else:
        sizes = QWEN2_VL_2B_TINY if tiny_config else QWEN2_VL_2B
        torch.manual_seed(0)
        model, processor = build_qwen2_vl(shapes_tokenizer(vocab_size=1024, num_images=2000, seed=0), **sizes)
        model.resize_token_embeddings(QWEN2_VL_VOCAB, mean_resizing=False)
        image_size = sizes["image_size"]
    return model.to(device=device, dtype=dtype).eval(), processor, image_size


def naive_captions(model, processor, images, decoding) -> list[str]:
    """Plain transformers: one image per generate call, new tokens decoded without special tokens."""
    out = []
    with torch.inference_mode():
        for image in images:
            inputs = processor(text=[chat_prompt(processor, PROMPT)], images=[image], return_tensors="pt")
            inputs = inputs.to(model.device)
            sequences = model.generate(**inputs, **decoding)
            new = sequences[0, inputs["input_ids"].shape[1] :]
            out.append(" ".join(processor.tokenizer.decode(new, skip_special_tokens=True).split()))
    return out


def timed(fn, device: str):
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return result, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--model", choices=("llava_tiny", "qwen2_vl_2b"))
    parser.add_argument("--tiny-config", action="store_true", help="qwen2_vl_2b's code path with tiny sizes")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=30)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads (1: a second OpenMP thread slows these tiny matrices on a busy machine)",
    )
    parser.add_argument("--out", type=Path, help="also write the JSON result here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    name = args.model or ("qwen2_vl_2b" if args.device == "cuda" else "llava_tiny")
    dtype = torch.bfloat16 if args.device == "cuda" else torch.float32
    model, processor, image_size = build_model(name, args.tiny_config, args.device, dtype)
    rng = np.random.default_rng(0)
    images = [
        Image.fromarray(rng.integers(0, 256, (image_size, image_size, 3), dtype=np.uint8))
        for _ in range(args.images)
    ]
    decoding = {
        "max_new_tokens": args.max_new_tokens,
        "min_new_tokens": args.max_new_tokens,
        "do_sample": False,
    }

    generate_captions(model, processor, images[:2], PROMPT, decoding, batch_size=2)  # warm-up
    naive_captions(model, processor, images[:1], decoding)
    ours, ours_s = timed(
        lambda: generate_captions(model, processor, images, PROMPT, decoding, args.batch_size), args.device
    )
    naive, naive_s = timed(lambda: naive_captions(model, processor, images, decoding), args.device)
    result = {
        "model": name + (" (tiny config)" if args.tiny_config and name != "llava_tiny" else ""),
        "parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
        "device": torch.cuda.get_device_name()
        if args.device == "cuda"
        else platform.processor() or "cpu",
        "threads": args.threads,
        "images": args.images,
        "batch_size": args.batch_size,
        "new_tokens": args.max_new_tokens,
        "dtype": str(dtype).removeprefix("torch."),
        "batched_captions_per_s": round(args.images / ours_s, 2),
        "naive_captions_per_s": round(args.images / naive_s, 2),
        "speedup": round(naive_s / ours_s, 2),
        "identical_captions": sum(a == b for a, b in zip(ours, naive, strict=True)),
    }
    print(json.dumps(result, indent=1))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
