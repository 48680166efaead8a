"""Contrastive losses (plain torch, no Lightning): CLIP InfoNCE and SigLIP sigmoid, both DDP-correct."""

from vlforge.vlm.losses.clip import ClipLoss, clip_loss
from vlforge.vlm.losses.siglip import SigLipLoss, siglip_loss

__all__ = ["ClipLoss", "SigLipLoss", "clip_loss", "siglip_loss"]
