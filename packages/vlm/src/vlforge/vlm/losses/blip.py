"""BLIP's image-text matching (ITM) with hard negatives mined from ITC similarities, and its captioning (LM)
loss.

Plain torch (no Lightning). Li et al. 2022, "BLIP", section 3.2; the ITC term is CLIP's InfoNCE
(:func:`vlforge.vlm.losses.clip_loss`).

Hard-negative mining. With normalised ITC features, the scale s and the global batch of N pairs, image i draws
one negative text j and text i one negative image j with

    p(j | image i) = w_ij / sum_k w_ik,   w_ij = [o(j) != o(i)] * (softmax_k(s * x_i . y_k)_j + 1e-4)
    p(j | text i)  = w'_ij / sum_k w'_ik, w'_ij = [o(j) != o(i)] * (softmax_k(s * y_i . x_k)_j + 1e-4)

where o(.) is the image that owns a pair: every pair whose image is the same image is a positive and is never
drawn (an image may own several texts in a batch). The 1e-4 is BLIP's pre-training floor, so a row whose
softmax underflows still samples among its negatives. A row whose every column is a positive has no negative
(index -1). Across processes the candidates are the all-gathered batch; sampling needs no gradient.

ITM loss: binary cross-entropy over the matched pairs (label 1) and the mined negatives (label 0),

    L_itm = -1/M sum_m log softmax(z_m)[y_m],   z_m = itm_head(h_[ENC]) in R^2.

LM loss: next-token cross-entropy on the caption tokens, padding ignored, optional label smoothing eps
(BLIP uses 0.1):

    L_lm = 1/T sum_t [ (1 - eps) * -log p(w_t | w_<t, I) + eps * 1/V sum_v -log p(v | w_<t, I) ].
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

from vlforge.common.distributed import world

IGNORE_INDEX = -100
WEIGHT_FLOOR = 1e-4


def gather_rows(tensor: torch.Tensor, pad_value: float | int = 0) -> torch.Tensor:
    """All ranks' ``tensor`` (no gradient) concatenated in rank order; ranks may differ in rows and in the
    length of dimension 1 (padded with ``pad_value``, e.g. token ids of different lengths)."""
    world_size = world()[1]
    if world_size == 1:
        return tensor
    shape = torch.tensor([tensor.shape[0], tensor.shape[1] if tensor.ndim > 1 else 0], device=tensor.device)
    shapes = [torch.zeros_like(shape) for _ in range(world_size)]
    dist.all_gather(shapes, shape)
    rows = [int(s[0]) for s in shapes]
    padded = tensor
    if tensor.ndim > 1:
        width = max(int(s[1]) for s in shapes)
        padded = F.pad(tensor, (0, 0) * (tensor.ndim - 2) + (0, width - tensor.shape[1]), value=pad_value)
    padded = torch.cat([padded, padded.new_full((max(rows) - tensor.shape[0], *padded.shape[1:]), pad_value)])
    gathered = [torch.empty_like(padded) for _ in range(world_size)]
    dist.all_gather(gathered, padded.contiguous())
    return torch.cat([g[:n] for g, n in zip(gathered, rows, strict=True)])


def hard_negative_weights(similarity: torch.Tensor, row_owners: torch.Tensor,
                          column_owners: torch.Tensor) -> torch.Tensor:
    """Unnormalised sampling weights ``w`` above: softmax of the scaled similarities plus the floor, zero
    where the column's owner is the row's. ``similarity`` [n, N] (already scaled), owners [n] and [N]."""
    weights = similarity.float().softmax(dim=1) + WEIGHT_FLOOR
    return weights.masked_fill(row_owners[:, None] == column_owners[None, :], 0.0)


def sample_hard_negatives(similarity: torch.Tensor, row_owners: torch.Tensor, column_owners: torch.Tensor,
                          generator: torch.Generator | None = None) -> torch.Tensor:
    """One column per row drawn with ``hard_negative_weights``; -1 for a row without any negative column."""
    weights = hard_negative_weights(similarity, row_owners, column_owners)
    has_negative = weights.sum(dim=1) > 0
    drawn = torch.full((weights.shape[0],), -1, dtype=torch.long, device=weights.device)
    if has_negative.any():
        drawn[has_negative] = torch.multinomial(weights[has_negative], 1, generator=generator).squeeze(1)
    return drawn


@torch.no_grad()
def mine_hard_negatives(image_features: torch.Tensor, text_features: torch.Tensor, owners: torch.Tensor,
                        logit_scale: torch.Tensor, generator: torch.Generator | None = None,
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For this rank's n pairs (normalised ITC features, ``owners`` [n] int64 image keys unique across ranks):
    ``(negative_text, negative_image, global_owners)`` — for each local image the index of a negative text and
    for each local text the index of a negative image, both into the all-gathered batch (-1: none), and the
    gathered owners."""
    all_images, all_texts = gather_rows(image_features.detach()), gather_rows(text_features.detach())
    all_owners = gather_rows(owners)
    negative_text = sample_hard_negatives(logit_scale * image_features @ all_texts.T, owners, all_owners,
                                          generator)
    negative_image = sample_hard_negatives(logit_scale * text_features @ all_images.T, owners, all_owners,
                                           generator)
    return negative_text, negative_image, all_owners


def itm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``L_itm`` above: ``logits`` [M, 2] from the ITM head, ``labels`` [M] (1 matched, 0 not)."""
    return F.cross_entropy(logits.float(), labels)


def caption_labels(input_ids: torch.Tensor, attention_mask: torch.Tensor,
                   prompt_length: int = 1) -> torch.Tensor:
    """LM targets for the decoder: the input ids with padding and the first ``prompt_length`` tokens (the
    [DEC] start token, or a prompt such as "a picture of") set to IGNORE_INDEX."""
    labels = input_ids.masked_fill(attention_mask == 0, IGNORE_INDEX)
    labels[:, :prompt_length] = IGNORE_INDEX
    return labels


def caption_lm_loss(logits: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """``L_lm`` above: logits [B, L, V] at every input position predict the next token; labels [B, L] are the
    input ids with ignored positions at IGNORE_INDEX (see ``caption_labels``)."""
    shifted = logits[:, :-1].reshape(-1, logits.shape[-1]).float()
    targets = labels[:, 1:].reshape(-1)
    return F.cross_entropy(shifted, targets, ignore_index=IGNORE_INDEX, label_smoothing=label_smoothing)
