"""Evaluation from embeddings (no Lightning): retrieval via the common metric, ARO-style pairwise accuracy."""

from __future__ import annotations

from collections import defaultdict

import torch

from vlforge.common.metrics import retrieval_metrics


def retrieval_from_features(image_features: torch.Tensor, text_features: torch.Tensor,
                            text_to_image: torch.Tensor) -> dict[str, float]:
    """R@1/5/10 both directions and median ranks (COCO protocol) from normalised features."""
    return retrieval_metrics(image_features.float() @ text_features.float().T, text_to_image)


def pairwise_accuracy(positive_scores: torch.Tensor, negative_scores: torch.Tensor,
                      kinds: list[str]) -> dict[str, float]:
    """ARO-style accuracy in percent per perturbation kind (and ``all``): an image scores its true caption above
    the perturbed one. Ties count as failures."""
    correct = (positive_scores > negative_scores).float()
    by_kind: dict[str, list[float]] = defaultdict(list)
    for kind, ok in zip(kinds, correct.tolist(), strict=True):
        by_kind[kind].append(ok)
    result = {kind: 100.0 * sum(v) / len(v) for kind, v in sorted(by_kind.items())}
    if kinds:
        result["all"] = 100.0 * correct.mean().item()
    return result
