"""Evaluate a captioner on held-out ShapesWorld images: generate one caption per image (greedy by default), then
score it against the image's scene graph.

Metrics (all over the evaluated images, in percent where a rate):

- CHAIR_i / CHAIR_s (``vlforge.common.metrics.chair``, objects = the six shapes with their synonyms);
- colour-attribute accuracy: every (colour, shape) pair the captions mention, counted once per mention, is
  correct when the image has an object of that colour and that shape::

      colour_accuracy = 100 · |correct pair mentions| / |pair mentions|   (0 when no caption mentions a pair)

  A pair mention is a colour word (``COLOUR_SYNONYMS``: any synonym, mapped to its canonical colour) followed by a
  shape word (``SHAPE_SYNONYMS``), with only size words (``SIZE_SYNONYMS``) between them: "a large red circle",
  "the crimson disc", "a red small circle". Words are lower-cased letter runs, as in CHAIR. A shape named without a
  colour and a colour named without a shape ("a grey background") are no pair mentions;
- colour accuracy on present shapes: the same over only the pair mentions whose shape the image has, so that a
  hallucinated shape (CHAIR's error) is not also counted as a colour error::

      colour_accuracy_present = 100 · |correct pair mentions| / |pair mentions whose shape is in the image|
- mean length: whitespace-separated words per caption.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from vlforge.captioner.formats import load_format
from vlforge.captioner.generation import generate_captions
from vlforge.common.errors import VLForgeError
from vlforge.common.metrics.chair import chair, scene_objects
from vlforge.common.progress import Progress
from vlforge.common.shapes.vocabulary import COLOUR_SYNONYMS, SHAPE_SYNONYMS, SIZE_SYNONYMS
from vlforge.common.store import CaptionDataset

GREEDY = {"do_sample": False, "num_beams": 1}
_WORD = re.compile(r"[a-z]+")
_COLOUR = {word: colour for colour, words in COLOUR_SYNONYMS.items() for word in (colour, *words)}
_SHAPE = {word: shape for shape, words in SHAPE_SYNONYMS.items() for word in (shape, *words)}
_SIZE = {word for size, words in SIZE_SYNONYMS.items() for word in (size, *words)}


def colour_shape_mentions(caption: str) -> list[tuple[str, str]]:
    """The canonical (colour, shape) pairs ``caption`` mentions, in order, one per mention."""
    pairs, colour = [], None
    for word in _WORD.findall(caption.lower()):
        if word in _SHAPE and colour is not None:
            pairs.append((colour, _SHAPE[word]))
            colour = None
        elif word in _COLOUR:
            colour = _COLOUR[word]
        elif word not in _SIZE:
            colour = None
    return pairs


@dataclass
class ColourAttributeResult:
    """Accuracy (percent) plus, per caption, its pair mentions and the wrong ones."""

    accuracy: float
    num_pairs: int
    num_correct: int
    pairs: list[list[tuple[str, str]]]
    wrong: list[list[tuple[str, str]]]
    accuracy_present: float = 0.0
    num_pairs_present: int = 0


def colour_attribute_accuracy(captions: Sequence[str], scene_graphs: Sequence[Mapping[str, Any]],
                              ) -> ColourAttributeResult:
    """Colour-attribute accuracy of ``captions[n]`` against ``scene_graphs[n]`` (see the module docstring)."""
    if len(captions) != len(scene_graphs):
        raise VLForgeError(f"{len(captions)} captions but {len(scene_graphs)} scene graphs")
    pairs, wrong, num_pairs_present = [], [], 0
    for caption, graph in zip(captions, scene_graphs, strict=True):
        present = {(obj["colour"], obj["shape"]) for obj in graph["objects"]}
        shapes = {obj["shape"] for obj in graph["objects"]}
        said = colour_shape_mentions(caption)
        pairs.append(said)
        wrong.append([p for p in said if p not in present])
        num_pairs_present += sum(shape in shapes for _, shape in said)
    num_pairs = sum(map(len, pairs))
    num_correct = num_pairs - sum(map(len, wrong))
    return ColourAttributeResult(accuracy=100.0 * num_correct / num_pairs if num_pairs else 0.0,
                                 num_pairs=num_pairs, num_correct=num_correct, pairs=pairs, wrong=wrong,
                                 accuracy_present=100.0 * num_correct / num_pairs_present if num_pairs_present
                                 else 0.0, num_pairs_present=num_pairs_present)


@dataclass
class CaptionerEvaluation:
    """Scores of one caption per image; ``captions`` and ``image_ids`` in evaluation order."""

    chair_i: float
    chair_s: float
    colour_accuracy: float
    colour_accuracy_present: float
    mean_length: float
    num_images: int
    num_object_mentions: int
    num_pair_mentions: int
    captions: list[str] = field(repr=False)
    image_ids: list[str] = field(repr=False)

    def summary(self) -> dict[str, float]:
        return {"chair_i": self.chair_i, "chair_s": self.chair_s, "colour_accuracy": self.colour_accuracy,
                "colour_accuracy_present": self.colour_accuracy_present, "mean_length": self.mean_length,
                "num_images": self.num_images,
                "num_object_mentions": self.num_object_mentions, "num_pair_mentions": self.num_pair_mentions}


def score_captions(captions: Sequence[str], scene_graphs: Sequence[Mapping[str, Any]],
                   image_ids: Sequence[str] | None = None) -> CaptionerEvaluation:
    """CHAIR, colour-attribute accuracy and mean length of ``captions[n]`` against ``scene_graphs[n]``."""
    hallucination = chair(list(captions), [scene_objects(g) for g in scene_graphs])
    colours = colour_attribute_accuracy(captions, scene_graphs)
    return CaptionerEvaluation(
        chair_i=hallucination.chair_i, chair_s=hallucination.chair_s, colour_accuracy=colours.accuracy,
        colour_accuracy_present=colours.accuracy_present,
        mean_length=sum(len(c.split()) for c in captions) / len(captions), num_images=len(captions),
        num_object_mentions=hallucination.num_mentions, num_pair_mentions=colours.num_pairs,
        captions=list(captions), image_ids=list(image_ids) if image_ids is not None else [""] * len(captions))


def evaluate_captioner(captioner: Any, store: str | os.PathLike, split: str = "test", caption_format: str = "dense",
                       limit: int | None = None, decoding: Mapping[str, Any] | None = None,
                       batch_size: int = 16) -> CaptionerEvaluation:
    """Caption the first ``limit`` images of ``split`` (all by default) with ``captioner`` (a Captioner) in
    ``caption_format`` via :func:`generate_captions` and score them against their scene graphs.

    ``decoding``: ``model.generate`` arguments, greedy (``GREEDY``) merged under them; pass ``max_new_tokens``.
    Progress: a bar in a terminal, status lines ``evaluate <split>: done/total images ...`` in a log.
    """
    dataset = CaptionDataset(store, split=split)
    count = len(dataset) if limit is None else min(limit, len(dataset))
    images, graphs, ids = [], [], []
    for ordinal in range(count):
        image, record = dataset[ordinal]
        graph = record.meta.get("scene_graph")
        if graph is None:
            raise VLForgeError(f"record {record.image_id!r} of store {os.fspath(store)!r} has no scene graph")
        images.append(image)
        graphs.append(graph)
        ids.append(record.image_id)
    if not images:
        raise VLForgeError(f"split {split!r} of store {os.fspath(store)!r} has no images to evaluate")
    prompt = load_format(caption_format).prompt()
    with Progress(f"evaluate {split}", len(images), "images") as progress:
        captions = generate_captions(captioner, None, images, prompt, decoding={**GREEDY, **(decoding or {})},
                                     batch_size=batch_size, progress=progress.advance_to)
    return score_captions(captions, graphs, ids)
