"""A record's split: a deterministic function of (seed, index) and the split fractions."""

from __future__ import annotations

import random

from vlforge.common.shapes.config import SPLITS


def split_of(seed: int, index: int, fractions: dict[str, float]) -> str:
    """Draw u ~ U[0, 1) from (seed, index) and return the split whose cumulative fraction interval holds u
    (splits in the order of ``SPLITS``)."""
    u = random.Random(f"shapesworld/{seed}/{index}/split").random()
    cumulative = 0.0
    chosen = None
    for name in SPLITS:
        share = fractions.get(name, 0.0)
        if share > 0:
            chosen = name
            cumulative += share
            if u < cumulative:
                return name
    return chosen  # u above a sum that rounds below 1: the last split with a share
