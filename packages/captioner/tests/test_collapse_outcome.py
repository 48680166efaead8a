"""Learning outcome (slow): pure DPO at a high learning rate shows the collapse signature (chosen and rejected
rewards both falling below the reference); the full loss (DPO + SFT + BCO) on the same pairs does not.

Caveat: the policy starts from the tiny preset's random init, not from an SFT captioner."""

import lightning as L
import pytest

from vlforge.captioner.captioner import Captioner
from vlforge.captioner.datamodules import CaptionerPreferenceDataModule
from vlforge.captioner.lit_preference import CaptionerPreferenceLitModule
from vlforge.common.presets import build_preset
from vlforge.common.shapes.build import build_shapes_store


def _run(store, weights, reward_trace, steps=40):
    L.seed_everything(0)
    module = CaptionerPreferenceLitModule(Captioner.from_parts(*build_preset("llava_tiny")), reference="precomputed",
                                          weights=weights, lr=5e-3, warmup_ratio=0.0, collapse_window=10)
    data = CaptionerPreferenceDataModule(store, batch_size=8, rejected="negative", train_limit=200)
    rewards = reward_trace()
    L.Trainer(max_steps=steps, accelerator="cpu", logger=False, enable_checkpointing=False,
              enable_progress_bar=False, enable_model_summary=False, callbacks=[rewards]).fit(module, datamodule=data)
    return rewards.summary()


@pytest.mark.slow
def test_pure_dpo_collapses_and_the_full_loss_does_not(tmp_path, reward_trace):
    store = str(tmp_path / "store")
    build_shapes_store(store, 250, seed=7, workers=1, split_fractions={"pref": 1.0})
    chosen, rejected, flagged = _run(store, (1.0, 0.0, 0.0), reward_trace)
    assert chosen < -0.2 and rejected < -0.2 and flagged == 1.0, (chosen, rejected, flagged)
    chosen, rejected, flagged = _run(store, (0.8, 1.0, 0.2), reward_trace)
    assert chosen > 0.0 and flagged == 0.0, (chosen, rejected, flagged)
