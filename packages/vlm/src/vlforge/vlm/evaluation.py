"""Evaluation of a contrastive model (no Lightning): one encoding pass over a store split, then retrieval and
ARO-style compositional accuracy through the common metrics.

A model here is anything with ``encode_image(images)``, ``tokenize(texts)`` and ``encode_text(tokens)``
returning
normalised features (``ContrastiveModel``, ``BlipPretrainingModel``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from open_clip.transform import image_transform
from torch import nn
from torch.utils.data import DataLoader

from vlforge.common import metrics
from vlforge.common.errors import VLForgeError
from vlforge.common.progress import track
from vlforge.common.records import Caption
from vlforge.common.sampling import CaptionChoice
from vlforge.common.store import CaptionDataset
from vlforge.vlm.scoring import ClipScorer


def retrieval_from_features(image_features: torch.Tensor, text_features: torch.Tensor,
                            text_to_image: torch.Tensor) -> dict[str, float]:
    """R@1/5/10 both directions and median ranks (COCO protocol) from normalised features."""
    return metrics.retrieval_metrics(image_features.float() @ text_features.float().T, text_to_image)


def pairwise_accuracy(positive_scores: torch.Tensor, negative_scores: torch.Tensor,
                      kinds: list[str]) -> dict[str, float]:
    """ARO-style accuracy in percent per perturbation kind, ``all`` (every pair) and ``macro`` (mean over
    kinds): an image scores its true caption above the perturbed one, ties count as failures. Computed by
    :func:`vlforge.common.metrics.pairwise_accuracy`; this only names its keys as the vlm logs them."""
    result = metrics.pairwise_accuracy(positive_scores, negative_scores, kinds)
    named = {key.removeprefix("accuracy/"): value for key, value in result.items()
             if key.startswith("accuracy/")}
    return {**named, "all": result["accuracy"], "macro": result["macro_accuracy"]}


@dataclass
class SplitEncoding:
    """Normalised image features [N, D] of one store split, in the split's order, with each image's captions
    and meta (e.g. the ShapesWorld scene graph). ``name`` names the store and split in error messages."""

    name: str
    image_ids: list[str]
    image_features: torch.Tensor
    captions: list[list[Caption]]
    meta: list[dict[str, Any]]


def _collate(items: list[tuple[torch.Tensor, Any]]) -> tuple[torch.Tensor, list[Any]]:
    return torch.stack([image for image, _ in items]), [record for _, record in items]


@torch.no_grad()
def encode_split(model: nn.Module, store: str | os.PathLike, split: str, image_size: int,
                 batch_size: int = 256, max_images: int | None = None) -> SplitEncoding:
    """Encode every image of ``split`` (the first ``max_images`` when given) with the evaluation transform
    (open_clip's resize + centre crop + CLIP normalisation at ``image_size``)."""
    dataset = CaptionDataset(store, split=split, transform=image_transform(image_size, is_train=False))
    if max_images is not None:
        dataset = torch.utils.data.Subset(dataset, range(min(max_images, len(dataset))))
    scorer = ClipScorer(model, image_size, batch_size)
    features, ids, captions, meta = [], [], [], []
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=_collate)
    for images, records in track(loader, f"encode {split} images", unit="batches"):
        features.append(scorer.encode_images(images))
        for record in records:
            ids.append(record.image_id)
            captions.append(record.captions)
            meta.append(record.meta)
    if not features:
        raise VLForgeError(f"store {store} split {split!r} has no images to evaluate")
    return SplitEncoding(f"store {store} split {split!r}", ids, torch.cat(features), captions, meta)


def encode_texts(model: nn.Module, texts: list[str], batch_size: int = 256) -> torch.Tensor:
    """Normalised text features [len(texts), D] in batches (vlforge.vlm.scoring.ClipScorer), with progress."""
    scorer = ClipScorer(model, batch_size=batch_size)
    starts = track(range(0, len(texts), batch_size), "encode texts", unit="batches")
    return torch.cat([scorer.encode_texts(texts[start:start + batch_size]) for start in starts])


def split_retrieval(model: nn.Module, encoding: SplitEncoding, choice: CaptionChoice,
                    batch_size: int = 256) -> dict[str, float]:
    """Retrieval over the split's captions that match ``choice`` (an image may own several; an image without
    one is only a distractor). Adds ``num_images`` and ``num_texts``."""
    texts, owners = [], []
    for index, captions in enumerate(encoding.captions):
        for caption in captions:
            if choice.matches(caption):
                texts.append(caption.text)
                owners.append(index)
    if not texts:
        raise VLForgeError(f"{encoding.name}: metric retrieval needs captions with {choice.describe()}; "
                           "there are none")
    result = retrieval_from_features(encoding.image_features, encode_texts(model, texts, batch_size),
                                     torch.tensor(owners))
    return {**result, "num_images": len(encoding.image_ids), "num_texts": len(texts)}


def split_aro(model: nn.Module, encoding: SplitEncoding, batch_size: int = 256) -> dict[str, float]:
    """ARO-style accuracy over the split's stored negatives (kind ``negative`` whose provenance names its
    ``positive_text`` and ``perturbation``): per perturbation, ``all`` and ``macro``; adds ``num_pairs``."""
    owners, positives, negatives, kinds = [], [], [], []
    for index, captions in enumerate(encoding.captions):
        for caption in captions:
            positive = caption.provenance.get("positive_text")
            if caption.kind == "negative" and positive:
                owners.append(index)
                positives.append(positive)
                negatives.append(caption.text)
                kinds.append(caption.provenance.get("perturbation", "negative"))
    if not owners:
        raise VLForgeError(f"{encoding.name}: metric aro needs negative captions with a positive_text in "
                           "their provenance; there are none")
    images = encoding.image_features[torch.tensor(owners)]
    positive_scores = (images * encode_texts(model, positives, batch_size)).sum(-1)
    negative_scores = (images * encode_texts(model, negatives, batch_size)).sum(-1)
    return {**pairwise_accuracy(positive_scores, negative_scores, kinds), "num_pairs": len(owners)}
