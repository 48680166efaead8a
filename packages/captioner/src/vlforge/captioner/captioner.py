"""A captioner: an image-text-to-text model, its processor, and the training policy applied to it — a
:class:`vlforge.common.lm.model.GenerativeModel` under the captioner's name (the class path shipped configs and
saved run configs name).

``Captioner(source=...)`` loads from YAML-friendly arguments: ``preset:<name>`` builds a tiny preset of
vlforge.common.presets (random weights), anything else is a hub name or local path loaded with transformers
(``trust_remote_code`` off unless asked; 4-bit QLoRA through bitsandbytes needs CUDA). ``Captioner.from_parts``
takes an already built model and processor. ``weights`` starts from a trained captioner: the captioner weights of
a captioner LitModule checkpoint (``vlforge.common.lm.loading.weights_from``), loaded before freezing and LoRA.
"""

from __future__ import annotations

from vlforge.common.lm.loading import DTYPES, PRESET_PREFIX
from vlforge.common.lm.model import GenerativeModel


class Captioner(GenerativeModel):
    """Holds ``model`` (an nn.Module) and ``processor`` with the freezing / LoRA policy applied."""


__all__ = ["DTYPES", "PRESET_PREFIX", "Captioner"]
