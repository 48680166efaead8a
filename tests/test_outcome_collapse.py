"""Learning outcome (slow): from an SFT captioner (MPO's setting, appendix D), pure DPO at 10x the tiny preference
lr shows the collapse signature (chosen and rejected rewards both below the reference, ``train/collapse``
flagged); the full loss (DPO + SFT + BCO) on the same pairs keeps the chosen reward above the reference.

Seed 0 of experiments/captioner/collapse_from_sft.py. The full loss's thresholds come from its chosen reward over
seeds 0-2 (docs/results.md, captioner outcome 3; docs/results/collapse_from_sft.json)."""

from __future__ import annotations

import pytest
import torch

# measured over seeds 0-2: full-loss chosen reward +0.88 / +1.24 / +1.22 (mean +1.11, std 0.20), pure DPO chosen
# -8.59 / -8.24 / -17.74; bounds about two standard deviations outside the worst seed
FULL_CHOSEN_MIN = 0.4
DPO_REWARD_MAX = -2.0


@pytest.mark.slow
def test_from_sft_pure_dpo_collapses_and_the_full_loss_does_not(tmp_path, collapse_from_sft):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = collapse_from_sft.run_seed(0, tmp_path)
    finally:
        torch.set_num_threads(threads)
    dpo, full = result["pure_dpo"], result["full"]
    assert dpo["chosen"] < DPO_REWARD_MAX and dpo["rejected"] < DPO_REWARD_MAX and dpo["flagged"] == 1.0, dpo
    assert full["chosen"] > FULL_CHOSEN_MIN and full["rejected"] < full["chosen"] and full["flagged"] == 0.0, full
