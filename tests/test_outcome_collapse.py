"""Learning outcome (slow): from an SFT captioner (MPO's setting, appendix D), pure DPO at 10x the tiny preference
lr shows the collapse signature (chosen and rejected rewards both below the reference, ``train/collapse``
flagged); the full loss (DPO + SFT + BCO) on the same pairs keeps the chosen reward above the reference.

Seed 0 of the plan experiments/captioner/plans/collapse.yaml (experiments/run.py, vlforge-captioner fit), read from
each preference run's metrics.csv. The full loss's thresholds come from its chosen reward over seeds 0-2 measured
with the earlier hand-built script (docs/results.md, captioner outcome 3; docs/results/collapse_from_sft/)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vlforge.common.metrics.training_curves import read_metrics_csv

REPO = Path(__file__).resolve().parents[1]
PLAN = REPO / "experiments" / "captioner" / "plans" / "collapse.yaml"
# measured over seeds 0-2 with the removed script: full-loss chosen reward +0.88 / +1.24 / +1.22 (mean +1.11, std
# 0.20), pure DPO chosen -8.59 / -8.24 / -17.74; bounds about two standard deviations outside the worst seed. The
# plan's seeds 0-2 (one thread): full chosen +0.87 / +0.78 / +0.98, pure DPO chosen -13.7 / -12.0 / -12.1, flagged
# only under pure DPO. The full loss's chosen - rejected margin is noise at this scale (-0.005 / +0.012 / -0.002 with
# the plan, +0.010 / +0.01 / +0.01 with the script), so its sign is not checked.
FULL_CHOSEN_MIN = 0.4
DPO_REWARD_MAX = -2.0


def reward_summary(run: Path) -> dict[str, float]:
    """Mean chosen / rejected reward over the last 10 logged steps of a preference run, and the collapse flag's max."""
    series = read_metrics_csv(run / "fit" / "version_0" / "metrics.csv")
    chosen, rejected = ([v for _, v in series[f"train/rewards_{k}"]][-10:] for k in ("chosen", "rejected"))
    assert len(series["train/collapse"]) == 40  # every one of the 40 steps logged
    return {"chosen": sum(chosen) / len(chosen), "rejected": sum(rejected) / len(rejected),
            "flagged": max(v for _, v in series["train/collapse"])}


@pytest.mark.slow
def test_from_sft_pure_dpo_collapses_and_the_full_loss_does_not(tmp_path, plan_runner):
    assert plan_runner.main(["run", str(PLAN), "--seeds", "0", "--runs-root", str(tmp_path)]) == 0
    seed = tmp_path / "captioner_collapse" / "seed0"
    dpo, full = reward_summary(seed / "pure_dpo"), reward_summary(seed / "full")
    assert dpo["chosen"] < DPO_REWARD_MAX and dpo["rejected"] < DPO_REWARD_MAX and dpo["flagged"] == 1.0, dpo
    assert full["chosen"] > FULL_CHOSEN_MIN and full["flagged"] == 0.0, full
