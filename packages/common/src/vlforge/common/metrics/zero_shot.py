"""Zero-shot classification from image embeddings and class-prompt embeddings, with prompt ensembling (CLIP)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torchmetrics.functional.classification import multiclass_accuracy

from vlforge.common.errors import VLForgeError


def class_embeddings(prompt_embeddings: torch.Tensor) -> torch.Tensor:
    """Prompt ensembling (Radford et al. 2021): ``w_c = normalize(mean_p normalize(t_{c,p}))``.

    ``prompt_embeddings``: [num_classes, num_prompts, dim] (or [num_classes, dim] for one prompt each).
    Returns the unit-norm class weights [num_classes, dim].
    """
    if prompt_embeddings.ndim == 2:
        prompt_embeddings = prompt_embeddings.unsqueeze(1)
    if prompt_embeddings.ndim != 3:
        raise VLForgeError(f"prompt embeddings must be [classes, prompts, dim], got {tuple(prompt_embeddings.shape)}")
    return F.normalize(F.normalize(prompt_embeddings, dim=-1).mean(dim=1), dim=-1)


def zero_shot_accuracy(image_embeddings: torch.Tensor, prompt_embeddings: torch.Tensor, labels: torch.Tensor,
                       ks: Sequence[int] = (1, 5)) -> dict[str, float]:
    """Top-k accuracy in percent (``top{k}``) of classifying each image by cosine similarity to the ensembled
    class embeddings; computed with torchmetrics' ``multiclass_accuracy(top_k=k, average="micro")``.

    ``image_embeddings``: [num_images, dim]; ``prompt_embeddings``: [num_classes, num_prompts, dim] or
    [num_classes, dim]; ``labels``: long [num_images]. Every k must be at most the number of classes.
    """
    weights = class_embeddings(prompt_embeddings)
    num_classes = weights.shape[0]
    if image_embeddings.ndim != 2 or image_embeddings.shape[1] != weights.shape[1]:
        raise VLForgeError(f"image embeddings {tuple(image_embeddings.shape)} do not match class embeddings "
                           f"of dim {weights.shape[1]}")
    if labels.shape != (image_embeddings.shape[0],):
        raise VLForgeError(f"labels must have shape [{image_embeddings.shape[0]}], got {tuple(labels.shape)}")
    too_big = [k for k in ks if k > num_classes]
    if too_big:
        raise VLForgeError(f"top-{too_big[0]} accuracy needs at least {too_big[0]} classes, got {num_classes}")
    logits = F.normalize(image_embeddings, dim=-1) @ weights.T
    return {f"top{k}": 100.0 * multiclass_accuracy(logits, labels, num_classes=num_classes, top_k=k,
                                                   average="micro").item() for k in ks}
