"""Zero-shot classification (CLIP, Radford et al. 2021): ShapesWorld shape / colour / count classes from the
scene graph, and any image-folder dataset (torchvision ImageFolder layout: ``root/<class name>/<image>``).

Each class c gets the ensembled text weight ``w_c = normalize(mean_p normalize(text(template_p.format(c))))``
and an image is assigned ``argmax_c <image, w_c>``; top-k accuracy comes from
:func:`vlforge.common.metrics.zero_shot_accuracy` (top-5 only where there are at least 5 classes).

ShapesWorld labels (the same ones the linear probe uses):

- ``shape`` / ``colour``: of the image's one object (``object_rule="single"``: images with several objects are
  left out) or of its largest object (``"largest"``, the default: images whose largest radius is shared by
  several objects are left out). Classes: every shape / colour of the ShapesWorld vocabulary.
- ``count``: the number of objects; classes 1 .. the largest count in the split ("one shape", "two
  shapes", ...).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from open_clip.transform import image_transform
from PIL import Image, UnidentifiedImageError
from torch import nn
from torch.utils.data import DataLoader, Dataset

from vlforge.common.errors import VLForgeError
from vlforge.common.metrics import zero_shot_accuracy
from vlforge.common.shapes.vocabulary import COLOURS, SHAPES
from vlforge.vlm.evaluation import SplitEncoding, encode_texts

SHAPES_TASKS = ("shape", "colour", "count")
OBJECT_RULES = ("largest", "single")
COUNT_WORDS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
TEMPLATES: dict[str, tuple[str, ...]] = {
    "shape": ("a photo of a {}.", "a {} on a plain background.", "an image of a {}.", "a drawing of a {}."),
    "colour": ("a photo of a {} shape.", "a {} object.", "an image of something {}.", "a {} shape."),
    "count": ("a photo of {}.", "an image with {}.", "{} on a background.", "a picture showing {}."),
    "image_folder": ("a photo of a {}.", "a picture of a {}.", "an image of a {}.", "a photo of the {}."),
}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


@dataclass
class ClassLabels:
    """``labels[n]``: the class of image ``kept[n]`` of an encoding; ``class_names`` fill the templates."""

    class_names: list[str]
    labels: torch.Tensor
    kept: torch.Tensor


def _scene_graph(meta: dict[str, Any], name: str, index: int, image_id: str) -> dict[str, Any]:
    graph = meta.get("scene_graph")
    if not isinstance(graph, dict) or not graph.get("objects"):
        raise VLForgeError(f"{name}: record {image_id!r} (#{index}) has no ShapesWorld scene graph with "
                           "objects, which the ShapesWorld zero-shot / linear-probe labels need")
    return graph


def _labelled_object(objects: list[dict[str, Any]], object_rule: str) -> dict[str, Any] | None:
    if object_rule == "single":
        return objects[0] if len(objects) == 1 else None
    largest = max(obj["radius"] for obj in objects)
    biggest = [obj for obj in objects if obj["radius"] == largest]
    return biggest[0] if len(biggest) == 1 else None


def shapes_labels(encoding: SplitEncoding, task: str, object_rule: str = "largest") -> ClassLabels:
    """The ShapesWorld ``task`` labels (shape, colour or count; see the module docstring) of a split."""
    if task not in SHAPES_TASKS:
        raise VLForgeError(f"ShapesWorld task {task!r} is not one of {', '.join(SHAPES_TASKS)}")
    if object_rule not in OBJECT_RULES:
        raise VLForgeError(f"object_rule {object_rule!r} is not one of {', '.join(OBJECT_RULES)}")
    graphs = [_scene_graph(m, encoding.name, i, encoding.image_ids[i]) for i, m in enumerate(encoding.meta)]
    if task == "count":
        counts = [len(g["objects"]) for g in graphs]
        names = [f"{COUNT_WORDS[n - 1]} shape{'s' if n > 1 else ''}" for n in range(1, max(counts) + 1)]
        return ClassLabels(names, torch.tensor([n - 1 for n in counts]), torch.arange(len(graphs)))
    vocabulary = list(SHAPES if task == "shape" else COLOURS)
    kept, labels = [], []
    for index, graph in enumerate(graphs):
        obj = _labelled_object(graph["objects"], object_rule)
        if obj is not None:
            kept.append(index)
            labels.append(vocabulary.index(obj[task]))
    if not kept:
        raise VLForgeError(f"{encoding.name}: no image has a {object_rule} object to label for task {task!r}")
    return ClassLabels(vocabulary, torch.tensor(labels), torch.tensor(kept))


def prompt_embeddings(model: nn.Module, class_names: Sequence[str], templates: Sequence[str]) -> torch.Tensor:
    """Text features [num_classes, num_templates, D] of every template filled with every class name."""
    texts = [template.format(name) for name in class_names for template in templates]
    return encode_texts(model, texts).view(len(class_names), len(templates), -1)


def classify(model: nn.Module, image_features: torch.Tensor, classes: ClassLabels,
             templates: Sequence[str]) -> dict[str, float]:
    """Top-1 (and top-5 with at least 5 classes) accuracy in percent, ``num_images`` and ``num_classes``."""
    ks = [k for k in (1, 5) if k <= len(classes.class_names)]
    result = zero_shot_accuracy(image_features[classes.kept],
                                prompt_embeddings(model, classes.class_names, templates), classes.labels, ks)
    return {**result, "num_images": int(classes.kept.numel()), "num_classes": len(classes.class_names)}


def shapes_zero_shot(model: nn.Module, encoding: SplitEncoding, tasks: Sequence[str] = SHAPES_TASKS,
                     object_rule: str = "largest") -> dict[str, dict[str, float]]:
    """Zero-shot accuracy per ShapesWorld task on an encoded split, with that task's prompt ensemble."""
    return {task: classify(model, encoding.image_features, shapes_labels(encoding, task, object_rule),
                           TEMPLATES[task]) for task in tasks}


class ImageFolderImages(Dataset):
    """``root/<class>/<image>`` (torchvision's ImageFolder layout): classes are the sorted sub-folder names,
    an image is any file with an image suffix in a class folder or below it; every class folder holds one.
    Nothing outside ``root`` is read (a link leading out is an error)."""

    def __init__(self, root: str | os.PathLike, image_size: int) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise VLForgeError(f"image folder {root}: no such folder")
        self.transform = image_transform(image_size, is_train=False)
        folders = sorted(p for p in self.root.iterdir() if p.is_dir())
        self.class_names = [p.name.replace("_", " ") for p in folders]
        if len(folders) < 2:
            raise VLForgeError(f"image folder {root}: needs at least 2 class folders, found {len(folders)}")
        self.samples: list[tuple[Path, int]] = []
        for label, folder in enumerate(folders):
            images = [p for p in sorted(folder.rglob("*"))
                      if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
            if not images:
                raise VLForgeError(f"image folder {root}: class folder {folder.name!r} holds no image")
            for path in images:
                if not path.resolve().is_relative_to(self.root):
                    raise VLForgeError(f"image folder {root}: {path} leads outside the folder")
                self.samples.append((path, label))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[index]
        try:
            with Image.open(path) as image:
                return self.transform(image.convert("RGB")), label
        except (OSError, UnidentifiedImageError) as err:
            raise VLForgeError(f"image folder {self.root}: cannot decode {path} "
                               f"({type(err).__name__})") from None


@torch.no_grad()
def image_folder_zero_shot(model: nn.Module, root: str | os.PathLike, image_size: int,
                           templates: Sequence[str] = TEMPLATES["image_folder"],
                           batch_size: int = 256) -> dict[str, float]:
    """Zero-shot accuracy on an image folder; class names are the folder names (``_`` read as a space)."""
    dataset = ImageFolderImages(root, image_size)
    device = next(model.parameters()).device
    features, labels = [], []
    for images, batch_labels in DataLoader(dataset, batch_size=batch_size):
        features.append(model.encode_image(images.to(device)).float().cpu())
        labels.append(batch_labels)
    classes = ClassLabels(dataset.class_names, torch.cat(labels), torch.arange(len(dataset)))
    return classify(model, torch.cat(features), classes, templates)
