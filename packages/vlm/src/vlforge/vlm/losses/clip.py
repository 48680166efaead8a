"""CLIP's symmetric InfoNCE loss with a learnable temperature, correct across processes.

With L2-normalised image features x_i and text features y_j, the learnable scale s = exp(t) (t = the model's
``logit_scale`` parameter; the caller passes s) and an optional bias b, the logits are
``l_ij = s * x_i . y_j + b`` over the global batch of N pairs, and

    L = 1/2 * [ -1/N sum_i log softmax_j(l_ij)[i]  -1/N sum_i log softmax_j(l_ji)[i] ]

(image-to-text plus text-to-image cross-entropy with the matching pair as the class; Radford et al. 2021).

Hard negatives (NegCLIP, Yuksekgonul et al. 2023): extra captions y^-_m are appended as columns of the
image-to-text softmax only, ``softmax over [l_i1..l_iN, s x_i . y^-_1 + b, ...]``; the text-to-image direction is
unchanged (a negative caption has no image).

Across processes the features are all-gathered with gradient. ``local_loss=False`` computes the full N x N logits
on every rank (open_clip's default); ``local_loss=True`` computes only the local rows (n x N and n x N for the two
directions), so memory is linear in the local batch n, with targets offset by the rows of the lower ranks. Both
give open_clip's ``ClipLoss(gather_with_grad=True)`` value on every rank. Ranks may hold different numbers of pairs
(skipped records), zero included: such a rank still takes part in the gathers and its local loss is 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vlforge.common.distributed import gather_rows_with_grad, gather_variable_with_grad, row_counts


def clip_loss(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor,
              logit_bias: torch.Tensor | None = None, *, negative_text_features: torch.Tensor | None = None,
              local_loss: bool = False) -> torch.Tensor:
    """The symmetric InfoNCE loss above; features are this rank's [n, D] pairs (normalised), negatives [m, D]."""
    counts = row_counts(image_features)  # texts pair one to one with images: one exchange serves both
    all_images, offset = gather_rows_with_grad(image_features, counts)
    all_texts, _ = gather_rows_with_grad(text_features, counts)
    if local_loss:
        rows_image, rows_text = image_features, text_features
        targets = torch.arange(image_features.shape[0], device=image_features.device) + offset
    else:
        rows_image, rows_text = all_images, all_texts
        targets = torch.arange(all_images.shape[0], device=image_features.device)
    columns_text = all_texts
    if negative_text_features is not None:
        columns_text = torch.cat([all_texts, gather_variable_with_grad(negative_text_features)], dim=0)
    logits_per_image = logit_scale * rows_image @ columns_text.T
    logits_per_text = logit_scale * rows_text @ all_images.T
    if logit_bias is not None:
        logits_per_image = logits_per_image + logit_bias
        logits_per_text = logits_per_text + logit_bias
    if targets.numel() == 0:  # no pairs on this rank: a zero loss that keeps the graph for DDP's all-reduce
        return (logits_per_image.sum() + logits_per_text.sum()) * 0.0
    return (F.cross_entropy(logits_per_image, targets) + F.cross_entropy(logits_per_text, targets)) / 2


class ClipLoss(nn.Module):
    """``clip_loss`` as a module; ``local_loss`` as above."""

    def __init__(self, local_loss: bool = False) -> None:
        super().__init__()
        self.local_loss = local_loss

    def forward(self, image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor,
                logit_bias: torch.Tensor | None = None,
                negative_text_features: torch.Tensor | None = None) -> torch.Tensor:
        return clip_loss(image_features, text_features, logit_scale, logit_bias,
                         negative_text_features=negative_text_features, local_loss=self.local_loss)
