"""AdaptiveKLController against Ziegler et al.'s formula, and its checkpoint state."""

import math

import pytest
import torch

from vlforge.common.errors import VLForgeError
from vlforge.rewriter.kl import AdaptiveKLController


def _formula(beta, kl, target, n_steps, horizon):
    error = kl / target - 1
    error = -0.2 if error < -0.2 else 0.2 if error > 0.2 else error
    return beta * (1 + error * n_steps / horizon)


def test_updates_follow_the_formula_over_a_trajectory():
    controller = AdaptiveKLController(init_kl_coef=0.1, target=6.0, horizon=10000)
    beta = 0.1
    for kl, steps in [(6.0, 256), (12.0, 256), (0.0, 512), (6.6, 128), (5.7, 64), (100.0, 10000)]:
        beta = _formula(beta, kl, 6.0, steps, 10000)
        assert controller.update(kl, steps) == pytest.approx(beta, rel=1e-15)
        assert controller.value == pytest.approx(beta, rel=1e-15)


def test_direction_and_clip():
    above = AdaptiveKLController(1.0, target=1.0, horizon=100)
    above.update(50.0, 100)  # error clipped to +0.2
    assert above.value == pytest.approx(1.2)
    below = AdaptiveKLController(1.0, target=1.0, horizon=100)
    below.update(0.9, 50)  # error -0.1, half a horizon
    assert below.value == pytest.approx(0.95)


def test_accepts_a_tensor_kl_and_ignores_nan():
    controller = AdaptiveKLController(0.2, target=2.0, horizon=10)
    controller.update(torch.tensor(2.2), 1)
    assert controller.value == pytest.approx(0.2 * (1 + 0.1 / 10))
    before = controller.value
    controller.update(float("nan"), 1)
    assert controller.value == before


def test_state_round_trips_through_torch_save(tmp_path):
    controller = AdaptiveKLController(0.1, target=6.0, horizon=1000)
    for kl in (3.0, 9.0, 7.5):
        controller.update(kl, 32)
    torch.save({"kl_controller": controller.state_dict()}, tmp_path / "ckpt.pt")
    restored = AdaptiveKLController(0.5, target=1.0, horizon=1)
    restored.load_state_dict(torch.load(tmp_path / "ckpt.pt", weights_only=True)["kl_controller"])
    assert restored.state_dict() == controller.state_dict()
    assert restored.update(4.0, 32) == controller.update(4.0, 32)
    assert not math.isnan(restored.value)


def test_bad_settings_and_state_are_one_line_errors():
    with pytest.raises(VLForgeError, match="target > 0"):
        AdaptiveKLController(0.1, target=0.0, horizon=10)
    with pytest.raises(VLForgeError, match="lacks"):
        AdaptiveKLController(0.1, 1.0, 10).load_state_dict({"value": 1.0})
