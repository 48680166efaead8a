"""Start from a trained captioner: load the captioner weights of a captioner LitModule checkpoint into a model.

The SFT and preference LitModules hold the captioner's network as ``self.model``, so its weights are the
checkpoint's ``state_dict`` entries under ``model.`` (a preference checkpoint's frozen ``reference_model.`` copy
is not the policy and is ignored). The file is read with ``torch.load(weights_only=True)``
(``vlforge.common.checkpoint.read_checkpoint_state_dict``: a Lightning ``.ckpt`` file or a DeepSpeed ZeRO folder).
"""

from __future__ import annotations

import os

from torch import nn

from vlforge.common.checkpoint import read_checkpoint_state_dict
from vlforge.common.errors import VLForgeError

CAPTIONER_PREFIX = "model."


def weights_from(checkpoint: str | os.PathLike, model: nn.Module) -> nn.Module:
    """Load the captioner weights of LitModule ``checkpoint`` into ``model`` (same architecture; every weight must
    match by name and shape) and return ``model``."""
    state = read_checkpoint_state_dict(checkpoint)
    weights = {k[len(CAPTIONER_PREFIX):]: v for k, v in state.items() if k.startswith(CAPTIONER_PREFIX)}
    if not weights:
        raise VLForgeError(f"checkpoint {os.fspath(checkpoint)}: no captioner weights (no '{CAPTIONER_PREFIX}*' "
                           "entries in its state_dict)")
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        name, what = (missing[0], "lacks") if missing else (unexpected[0], "has an unexpected")
        raise VLForgeError(f"checkpoint {os.fspath(checkpoint)} {what} captioner weight {name!r} "
                           f"({len(missing)} missing, {len(unexpected)} unexpected): not this captioner's architecture")
    for name, value in weights.items():
        if value.shape != expected[name].shape:
            raise VLForgeError(f"checkpoint {os.fspath(checkpoint)}: weight {name!r} has shape {tuple(value.shape)}, "
                               f"the captioner expects {tuple(expected[name].shape)}")
    model.load_state_dict(weights)
    return model
