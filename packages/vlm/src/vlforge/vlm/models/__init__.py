"""Contrastive image-text models (no Lightning): open_clip towers, transformers text towers, ContrastiveModel."""

from vlforge.vlm.models.contrastive import ContrastiveModel
from vlforge.vlm.models.hf_text_tower import HFTextTower
from vlforge.vlm.models.open_clip_towers import OpenClipImageTower, OpenClipTextTower

__all__ = ["ContrastiveModel", "HFTextTower", "OpenClipImageTower", "OpenClipTextTower"]
