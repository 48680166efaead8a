"""Image–text retrieval recall@k and median rank, the COCO / Flickr30k protocol (an image may own several texts)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from vlforge.common.errors import VLForgeError


def retrieval_metrics(similarity: torch.Tensor, text_to_image: torch.Tensor,
                      ks: Sequence[int] = (1, 5, 10)) -> dict[str, float]:
    """Recall@k (percent) and median rank for text→image and image→text retrieval.

    ``similarity``: float [num_images, num_texts]; ``text_to_image``: long [num_texts], the index of each text's image.

    - text→image: the rank of text j's own image among all images,
      ``rank_j = 1 + #{i : S[i, j] > S[own(j), j]}``; ``t2i_r{k}`` = 100 · mean_j [rank_j ≤ k].
    - image→text: the rank of image i's best-ranked own text,
      ``rank_i = 1 + #{t : S[i, t] > max_{j ∈ texts(i)} S[i, j]}``; ``i2t_r{k}`` = 100 · mean_i [rank_i ≤ k]
      (at least one own text in the top k). Images that own no text are left out of image→text.
    - ``t2i_median_rank`` / ``i2t_median_rank``: the median of these 1-based ranks (the mean of the two middle
      ranks when their number is even).

    Ties count in the item's favour (only strictly higher scores push it down). Vectorised: one comparison of the
    whole matrix per direction, so a 5k × 25k matrix takes about a second on a CPU.
    """
    if similarity.ndim != 2:
        raise VLForgeError(f"similarity must be 2-D [num_images, num_texts], got shape {tuple(similarity.shape)}")
    num_images, num_texts = similarity.shape
    if text_to_image.shape != (num_texts,):
        raise VLForgeError(f"text_to_image must have shape [{num_texts}] (one image index per text), "
                           f"got {tuple(text_to_image.shape)}")
    if num_texts == 0:
        raise VLForgeError("retrieval_metrics needs at least one text")
    if text_to_image.min() < 0 or text_to_image.max() >= num_images:
        raise VLForgeError(f"text_to_image holds an image index outside [0, {num_images})")
    if not torch.isfinite(similarity).all():
        raise VLForgeError("similarity holds NaN or infinite values")
    text_to_image = text_to_image.to(similarity.device, torch.long)
    own = similarity[text_to_image, torch.arange(num_texts, device=similarity.device)]  # [T]
    t2i_rank = 1 + (similarity > own.unsqueeze(0)).sum(dim=0)  # [T]

    best_own = torch.full((num_images,), float("-inf"), dtype=similarity.dtype, device=similarity.device)
    best_own = best_own.scatter_reduce(0, text_to_image, own, reduce="amax")
    has_text = torch.isfinite(best_own)
    i2t_rank = 1 + (similarity[has_text] > best_own[has_text].unsqueeze(1)).sum(dim=1)  # [I with texts]

    out: dict[str, float] = {}
    for direction, rank in (("t2i", t2i_rank), ("i2t", i2t_rank)):
        for k in ks:
            out[f"{direction}_r{k}"] = 100.0 * (rank <= k).double().mean().item()
        out[f"{direction}_median_rank"] = torch.quantile(rank.double(), 0.5).item()
    return out
