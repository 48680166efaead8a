"""Pre-train a LLaVA vision tower on ShapesWorld scene graphs with a dense per-patch loss (the probe of
docs/results.md, "Captioner", outcome 1), and hand it to a llava preset.

The tower (a CLIP ViT, random init, shaped like ``llava_small``'s) plus one linear layer labels every patch with the
colour and the shape of the object covering it (class 0: background): a patch belongs to an object when its centre
lies within 0.8 radius of the object's centre; smaller objects are drawn last, on top. The loss is the sum of the
two per-patch cross-entropies. Every ``eval_every`` steps the accuracy of colour, shape and both at the patch holding
each object's centre is measured on the first ``eval_limit`` images of ``eval_split`` — this isolates the tower from
the language model: if the tower cannot name a shape here, no captioner built on it can.

``pretrain_tower`` writes a Hugging Face CLIP vision folder (``tower/``: weights, config, image processor), the
curve (``probe.json``) and ``preset.yaml``: the base preset with ``model.vision_from`` set to the tower and the
preset's ``seed`` set to the run's seed (the rest of the captioner's init varies with it), which a captioner config
names as ``source: preset:<out>/preset.yaml``. Plain torch (no Lightning): the probe is not a captioner. Progress:
a bar in a terminal, ``pretrain-tower: step/total steps ... ETA`` status lines in a log, the probe's accuracies
logged at INFO at each evaluation.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vlforge.common.atomic_file import write_atomically
from vlforge.common.errors import VLForgeError
from vlforge.common.lm.loading import save_pretrained
from vlforge.common.presets.llava import build_llava
from vlforge.common.presets.registry import load_preset_config, write_vision_from_preset
from vlforge.common.presets.tokenizer import shapes_tokenizer
from vlforge.common.progress import track
from vlforge.common.shapes.vocabulary import COLOURS, SHAPES
from vlforge.common.store import CaptionDataset

log = logging.getLogger(__name__)

TEXT = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
        "num_key_value_heads": 1}  # unused by the probe; a LLaVA needs one


def patch_labels(graph: dict, grid: int, patch: int) -> tuple[torch.Tensor, torch.Tensor, list[tuple]]:
    """Colour and shape class per patch ([grid * grid] each) and, per object, (centre patch, colour, shape)."""
    colour, shape = torch.zeros(grid, grid, dtype=torch.long), torch.zeros(grid, grid, dtype=torch.long)
    ys, xs = np.mgrid[0:grid, 0:grid] * patch + patch // 2
    centres = []
    for obj in sorted(graph["objects"], key=lambda o: -o["radius"]):
        inside = torch.from_numpy((xs - obj["x"]) ** 2 + (ys - obj["y"]) ** 2 <= (0.8 * obj["radius"]) ** 2)
        c, s = COLOURS.index(obj["colour"]) + 1, SHAPES.index(obj["shape"]) + 1
        colour[inside], shape[inside] = c, s
        centre = min(grid - 1, obj["y"] // patch) * grid + min(grid - 1, obj["x"] // patch)
        centres.append((centre, c, s))
    return colour.flatten(), shape.flatten(), centres


def load_split(store: str, split: str, limit: int | None, image_processor: Any, grid: int, patch: int):
    """Pixels, per-patch colour and shape labels and object centres of the first ``limit`` images of ``split``."""
    dataset = CaptionDataset(store, split=split)
    count = len(dataset) if limit is None else min(limit, len(dataset))
    if count == 0:
        raise VLForgeError(f"split {split!r} of store {store} has no images")
    pixels, colours, shapes, centres = [], [], [], []
    for ordinal in range(count):
        image, record = dataset[ordinal]
        graph = record.meta.get("scene_graph")
        if graph is None:
            raise VLForgeError(f"record {record.image_id!r} of store {store} has no scene graph")
        pixels.append(image_processor(images=[image], return_tensors="pt")["pixel_values"][0])
        colour, shape, centre = patch_labels(graph, grid, patch)
        colours.append(colour), shapes.append(shape), centres.append(centre)
    return torch.stack(pixels), torch.stack(colours), torch.stack(shapes), centres


def centre_accuracy(logits: torch.Tensor, centres: list[list[tuple]]) -> dict[str, float]:
    """Accuracy (%) of colour, shape and both at each object's centre patch."""
    colour, shape = logits[..., :len(COLOURS) + 1].argmax(-1), logits[..., len(COLOURS) + 1:].argmax(-1)
    hits = {"colour": 0, "shape": 0, "both": 0}
    objects = 0
    for row, objs in enumerate(centres):
        for patch, c, s in objs:
            objects += 1
            hits["colour"] += int(colour[row, patch] == c)
            hits["shape"] += int(shape[row, patch] == s)
            hits["both"] += int(colour[row, patch] == c and shape[row, patch] == s)
    return {k: round(100.0 * v / objects, 1) for k, v in hits.items()}


def pretrain_tower(store: str, out: str | Path, steps: int = 2500, lr: float = 1e-3, batch_size: int = 32,
                   seed: int = 0, base_preset: str = "llava_small", train_split: str = "seed",
                   eval_split: str = "val", eval_limit: int = 300, eval_every: int = 100) -> dict[str, Any]:
    """Train the base preset's vision tower (random init) with the per-patch loss; write ``out/tower``,
    ``out/probe.json`` and ``out/preset.yaml`` (see the module docstring). Returns the probe record."""
    base = load_preset_config(base_preset)
    if base["family"] != "llava":
        raise VLForgeError(f"preset {base_preset!r}: the patch tower is a LLaVA vision tower (family llava)")
    model_args = base.get("model") or {}
    vision, image_size = model_args.get("vision"), model_args.get("image_size", 64)
    patch = model_args.get("patch_size", 8)
    torch.manual_seed(seed)
    model, processor = build_llava(shapes_tokenizer(**(base.get("tokenizer") or {})), image_size=image_size,
                                   patch_size=patch, vision=vision, text=TEXT)
    tower, grid = model.model.vision_tower, image_size // patch
    train = load_split(store, train_split, None, processor.image_processor, grid, patch)
    held = load_split(store, eval_split, eval_limit, processor.image_processor, grid, patch)
    head = nn.Linear(tower.config.hidden_size, len(COLOURS) + 1 + len(SHAPES) + 1)
    optimizer = torch.optim.AdamW([*tower.parameters(), *head.parameters()], lr=lr)

    def logits(pixels: torch.Tensor) -> torch.Tensor:
        return head(tower(pixels, output_hidden_states=True).hidden_states[-1][:, 1:])

    start, curve = time.time(), []
    for step in track(range(1, steps + 1), "pretrain-tower", steps, "steps"):
        index = torch.randint(0, len(train[0]), (batch_size,))
        scores = logits(train[0][index])
        loss = (nn.functional.cross_entropy(scores[..., :len(COLOURS) + 1].flatten(0, 1), train[1][index].flatten())
                + nn.functional.cross_entropy(scores[..., len(COLOURS) + 1:].flatten(0, 1),
                                              train[2][index].flatten()))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % eval_every == 0 or step == steps:
            with torch.no_grad():
                accuracy = centre_accuracy(logits(held[0]), held[3])
            curve.append({"step": step, "loss": round(loss.item(), 3), **accuracy, "s": round(time.time() - start)})
            log.info("tower probe at step %d: %s", step, json.dumps(curve[-1]))
    out = Path(out)
    save_pretrained(tower, processor.image_processor, out / "tower", inputs=[store])
    record = {"store": store, "base_preset": base_preset, "patch_size": patch, "lr": lr, "steps": steps,
              "batch_size": batch_size, "seed": seed, "train_split": train_split, "train_images": len(train[0]),
              "eval_split": eval_split, "eval_images": len(held[0]), "train_s": round(time.time() - start),
              "curve": curve}
    write_atomically(out / "probe.json", json.dumps(record, indent=1) + "\n", inputs=[store])
    write_vision_from_preset(base_preset, out / "tower", out / "preset.yaml", seed=seed,
                             description=f"{base_preset} with the vision tower pre-trained per patch on {train_split} "
                                         f"({steps} steps, seed {seed})")
    return record
