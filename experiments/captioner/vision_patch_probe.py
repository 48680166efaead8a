"""Can the captioner's vision tower tell colours and shapes apart? A dense probe on ShapesWorld.

    python experiments/captioner/vision_patch_probe.py --store runs/outcomes/store --steps 600
    python experiments/captioner/vision_patch_probe.py --store runs/outcomes/store --patch-size 4
    python experiments/captioner/vision_patch_probe.py --store runs/outcomes/store --steps 2500 \
        --save runs/outcomes/patch_tower

The llava_small vision tower (CLIP ViT 3 x 128, random init) plus one linear layer is trained to label every patch
with the colour and the shape of the object covering it (background: class 0), from the scene graphs of the seed
split (a patch belongs to an object when its centre is within 0.8 radius of the object's centre; smaller objects
are drawn last, on top). Every 100 steps: on the first 300 test images, the accuracy of colour, shape and both at
the patch holding each object's centre. This isolates the tower from the language model: if the tower cannot
name a shape here, no captioner built on it can.

``--save DIR`` writes the trained tower as a Hugging Face CLIP vision folder (weights, config, image processor):
a vision tower pre-trained on the seed split's scene graphs, which a llava preset takes as ``model.vision_from``
(``shapes_outcomes.py sft --vision-from DIR``).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from torch import nn

from vlforge.common.presets.llava import build_llava
from vlforge.common.presets.tokenizer import shapes_tokenizer
from vlforge.common.shapes.vocabulary import COLOURS, SHAPES
from vlforge.common.store import CaptionDataset

VISION = {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 3, "num_attention_heads": 4}
TEXT = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2,
        "num_key_value_heads": 1}  # unused by the probe; LLaVA needs one


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


def load(store: str, split: str, limit: int, processor, grid: int, patch: int):
    dataset = CaptionDataset(store, split=split)
    pixels, colours, shapes, centres = [], [], [], []
    for ordinal in range(min(limit, len(dataset))):
        image, record = dataset[ordinal]
        pixels.append(processor.image_processor(images=[image], return_tensors="pt")["pixel_values"][0])
        colour, shape, centre = patch_labels(record.meta["scene_graph"], grid, patch)
        colours.append(colour), shapes.append(shape), centres.append(centre)
    return torch.stack(pixels), torch.stack(colours), torch.stack(shapes), centres


def centre_accuracy(logits: torch.Tensor, centres: list[list[tuple]]) -> dict[str, float]:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", required=True)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--patch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--save", help="write the trained vision tower here (Hugging Face CLIP vision folder)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model, processor = build_llava(shapes_tokenizer(vocab_size=1024, num_images=2000), image_size=64,
                                   patch_size=args.patch_size, vision=VISION, text=TEXT)
    tower, grid = model.model.vision_tower, 64 // args.patch_size
    train = load(args.store, "seed", 10**9, processor, grid, args.patch_size)
    test = load(args.store, "test", 300, processor, grid, args.patch_size)
    head = nn.Linear(VISION["hidden_size"], len(COLOURS) + 1 + len(SHAPES) + 1)
    optimizer = torch.optim.AdamW([*tower.parameters(), *head.parameters()], lr=args.lr)

    def logits(pixels: torch.Tensor) -> torch.Tensor:
        return head(tower(pixels, output_hidden_states=True).hidden_states[-1][:, 1:])

    start, curve = time.time(), []
    for step in range(1, args.steps + 1):
        index = torch.randint(0, len(train[0]), (args.batch_size,))
        out = logits(train[0][index])
        loss = (nn.functional.cross_entropy(out[..., :len(COLOURS) + 1].flatten(0, 1), train[1][index].flatten())
                + nn.functional.cross_entropy(out[..., len(COLOURS) + 1:].flatten(0, 1), train[2][index].flatten()))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 100 == 0:
            with torch.no_grad():
                scores = centre_accuracy(logits(test[0]), test[3])
            curve.append({"step": step, "loss": round(loss.item(), 3), **scores, "s": round(time.time() - start)})
            print(json.dumps(curve[-1]), flush=True)
    result = {"store": args.store, "patch_size": args.patch_size, "lr": args.lr, "steps": args.steps,
              "seed": args.seed, "train_s": round(time.time() - start), "curve": curve}
    if args.save:
        tower.save_pretrained(args.save)
        processor.image_processor.save_pretrained(args.save)
        with open(f"{args.save}/probe.json", "w") as f:
            json.dump(result, f, indent=1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
