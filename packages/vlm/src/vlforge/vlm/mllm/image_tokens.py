"""The number of image tokens in each sample's text against the number of features its images give.

LLaVA replaces the i-th run of ``<image>`` tokens with the i-th image's projected features; a sample whose count is
off (text cut into its image tokens, a placeholder not expanded, an image too many) would be paired with the wrong
features or fail deep inside the model. Here it is an error naming the sample.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import LlavaConfig

from vlforge.common.errors import VLForgeError

CLS_TOKEN_FAMILIES = ("clip_vision_model", "clip")


def features_per_image(config: LlavaConfig, height: int, width: int) -> int:
    """Projected features of one ``height`` x ``width`` image: one per patch, plus the CLS token of a CLIP tower
    unless the "default" strategy drops it."""
    vision = config.vision_config
    patches = (height // vision.patch_size) * (width // vision.patch_size)
    has_cls = vision.model_type in CLS_TOKEN_FAMILIES
    return patches + int(has_cls) - int(config.vision_feature_select_strategy == "default")


def check_image_tokens(input_ids: torch.Tensor, config: LlavaConfig, images_per_sample: Sequence[int],
                       pixel_values: torch.Tensor | None, sample_ids: Sequence[str]) -> None:
    """Raise a VLForgeError naming the first sample whose ``<image>`` token count is not ``images_per_sample[i]``
    times the features per image (from ``pixel_values``' height and width)."""
    if not len(sample_ids) == len(images_per_sample) == input_ids.shape[0]:
        raise VLForgeError(f"{input_ids.shape[0]} samples, {len(images_per_sample)} image counts and "
                           f"{len(sample_ids)} ids do not match")
    per_image = 0 if pixel_values is None else features_per_image(config, *pixel_values.shape[-2:])
    counts = (input_ids == config.image_token_index).sum(dim=1).tolist()
    for sample_id, found, images in zip(sample_ids, counts, images_per_sample, strict=True):
        if found != images * per_image:
            raise VLForgeError(f"sample {sample_id}: {found} image tokens in the text, but its {images} image(s) give "
                               f"{images * per_image} features ({per_image} per image)")
