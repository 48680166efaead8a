"""SigLIP's pairwise sigmoid loss (Zhai et al. 2023), correct across processes.

With normalised image features x_i (this rank's n images), text features y_j (all N texts of the global batch,
gathered with gradient), scale s = exp(t) and bias b, logits ``l_ij = s * x_i . y_j + b`` and labels
z_ij = +1 for a matching pair, -1 otherwise:

    L = -1/n * sum_i sum_j log sigmoid(z_ij * l_ij)

Each rank's loss covers its own images against every text, so the ranks' losses sum to the global loss over
all N x N pairs; this is the value open_clip's ``SigLipLoss`` returns on each rank (it exchanges text features
between neighbours instead of all-gathering them; the sum is the same). Hard negatives are extra texts y^-_m with
z = -1 for every image. Ranks may hold different numbers of pairs, zero included (local loss 0).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vlforge.common.distributed import gather_rows_with_grad, gather_variable_with_grad


def siglip_loss(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor,
                logit_bias: torch.Tensor, *, negative_text_features: torch.Tensor | None = None) -> torch.Tensor:
    """The sigmoid loss above for this rank's [n, D] pairs (normalised); optional negatives [m, D]."""
    local = image_features.shape[0]
    texts, offset = gather_rows_with_grad(text_features)
    if negative_text_features is not None:
        texts = torch.cat([texts, gather_variable_with_grad(negative_text_features)], dim=0)
    logits = logit_scale * image_features @ texts.T + logit_bias
    labels = -torch.ones_like(logits)
    own = torch.arange(local, device=logits.device)
    labels[own, own + offset] = 1.0
    return -F.logsigmoid(labels * logits).sum() / max(local, 1)


class SigLipLoss(nn.Module):
    """``siglip_loss`` as a module."""

    def forward(self, image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor,
                logit_bias: torch.Tensor, negative_text_features: torch.Tensor | None = None) -> torch.Tensor:
        return siglip_loss(image_features, text_features, logit_scale, logit_bias,
                           negative_text_features=negative_text_features)
