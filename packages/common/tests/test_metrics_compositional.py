"""Pairwise (ARO-style) compositional accuracy against a python loop."""

import random

import pytest
import torch

from vlforge.common.errors import VLForgeError
from vlforge.common.metrics.compositional import pairwise_accuracy

TYPES = ("attribute_swap", "relation_swap", "object_replacement")


def test_matches_loop_per_type():
    rng = random.Random(0)
    g = torch.Generator().manual_seed(0)
    n = 200
    positive = torch.randn(n, generator=g)
    negative = positive + torch.randn(n, generator=g) - 0.3
    types = [rng.choice(TYPES) for _ in range(n)]
    got = pairwise_accuracy(positive, negative, types)
    per_type = {}
    for t in TYPES:
        pairs = [(p, q) for p, q, ty in zip(positive.tolist(), negative.tolist(), types) if ty == t]
        per_type[t] = 100.0 * sum(p > q for p, q in pairs) / len(pairs)
        assert got[f"accuracy/{t}"] == pytest.approx(per_type[t])
    assert got["accuracy"] == pytest.approx(100.0 * sum(p > q for p, q in zip(positive, negative)) / n)
    assert got["macro_accuracy"] == pytest.approx(sum(per_type.values()) / 3)
    assert 0 < got["accuracy"] < 100


def test_tie_is_a_miss_and_errors():
    assert pairwise_accuracy(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 1.0])) == {"accuracy": 50.0}
    with pytest.raises(VLForgeError, match="1 perturbation types for 2 pairs"):
        pairwise_accuracy(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 1.0]), ["a"])
    with pytest.raises(VLForgeError, match="same length"):
        pairwise_accuracy(torch.tensor([1.0, 2.0]), torch.tensor([1.0]))
