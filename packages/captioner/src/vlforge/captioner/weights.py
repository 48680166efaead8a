"""Start from a trained captioner: moved to :func:`vlforge.common.lm.loading.weights_from` (the captioner's name)."""

from vlforge.common.lm.loading import weights_from

__all__ = ["weights_from"]
