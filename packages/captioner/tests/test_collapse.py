"""RewardCollapseMonitor: up only while both rewards fall and the chosen one is below the reference."""

import pytest

from vlforge.captioner.collapse import RewardCollapseMonitor


def _feed(monitor, chosen, rejected):
    return [monitor.update(c, r) for c, r in zip(chosen, rejected)]


def test_flags_both_rewards_falling_below_reference():
    flags = _feed(RewardCollapseMonitor(window=3), [0.0, -0.1, -0.2, -0.3, -0.4, -0.5],
                  [0.0, -0.3, -0.6, -0.9, -1.2, -1.5])
    assert flags == [False] * 5 + [True]


@pytest.mark.parametrize("chosen,rejected", [
    ([0.0, 0.1, 0.2, 0.3, 0.4, 0.5], [0.0, -0.3, -0.6, -0.9, -1.2, -1.5]),   # healthy: chosen rises
    ([0.9, 0.8, 0.7, 0.6, 0.5, 0.4], [0.0, -0.3, -0.6, -0.9, -1.2, -1.5]),   # chosen falls but stays above π0
    ([0.0, -0.1, -0.2, -0.3, -0.4, -0.5], [0.0, 0.1, 0.2, 0.3, 0.4, 0.5]),   # rejected rises
])
def test_no_flag_otherwise(chosen, rejected):
    assert not any(_feed(RewardCollapseMonitor(window=3), chosen, rejected))
