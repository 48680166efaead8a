"""Pairwise compositional accuracy, ARO / SugarCrepe style: is the true caption scored above its perturbation?"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from vlforge.common.errors import VLForgeError


def pairwise_accuracy(positive_scores: torch.Tensor, negative_scores: torch.Tensor,
                      perturbations: Sequence[str] | None = None) -> dict[str, float]:
    """Percent of pairs with ``score(image, true caption) > score(image, perturbed caption)`` (a tie is a miss).

    ``positive_scores`` / ``negative_scores``: [num_pairs], e.g. image–text cosine similarities (Yuksekgonul et al.
    2023, ARO; Hsieh et al. 2023, SugarCrepe). ``perturbations``: each pair's type (e.g. "attribute_swap",
    "relation_swap", "object_replacement"). Returns ``accuracy`` over all pairs, ``accuracy/<type>`` per type and
    ``macro_accuracy`` (mean over types) when types are given.
    """
    if positive_scores.shape != negative_scores.shape or positive_scores.ndim != 1:
        raise VLForgeError(f"positive and negative scores must be 1-D of the same length, got "
                           f"{tuple(positive_scores.shape)} and {tuple(negative_scores.shape)}")
    if positive_scores.numel() == 0:
        raise VLForgeError("pairwise_accuracy needs at least one pair")
    wins = (positive_scores > negative_scores).double()
    out = {"accuracy": 100.0 * wins.mean().item()}
    if perturbations is not None:
        if len(perturbations) != len(wins):
            raise VLForgeError(f"{len(perturbations)} perturbation types for {len(wins)} pairs")
        per_type = {}
        for name in sorted(set(perturbations)):
            mask = torch.tensor([p == name for p in perturbations])
            per_type[name] = 100.0 * wins[mask].mean().item()
            out[f"accuracy/{name}"] = per_type[name]
        out["macro_accuracy"] = sum(per_type.values()) / len(per_type)
    return out
