"""CaptionerPreferenceLitModule with real Lightning Trainers on the tiny LLaVA preset."""

import json
import math

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader

from vlforge.captioner.captioner import Captioner
from vlforge.captioner.lit_preference import CaptionerPreferenceLitModule
from vlforge.common.errors import VLForgeError
from vlforge.common.presets import build_preset

PAIRS = [("A red circle left of a blue square.", "A blue circle left of a red square."),
         ("Two green stars.", "Three purple hexagons."),
         ("A yellow diamond above a black star.", "A yellow diamond below a black star."),
         ("A small white hexagon.", "A large orange triangle.")]


def _pairs(images):
    return [{"key": f"img-{i}", "image": img, "instruction": "Describe the image.", "chosen": c, "rejected": r}
            for i, (img, (c, r)) in enumerate(zip(images, PAIRS))]


class _Pairs(L.LightningDataModule):
    def __init__(self, pairs):
        super().__init__()
        self.pairs = pairs

    def train_dataloader(self):
        return DataLoader(self.pairs, batch_size=2, shuffle=False, collate_fn=list)


class _PairsWithValidation(_Pairs):
    def val_dataloader(self):
        return DataLoader(self.pairs, batch_size=2, shuffle=False, collate_fn=list)


class _RecordMetrics(Callback):
    def __init__(self):
        self.rows = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.rows.append({k: float(v) for k, v in trainer.callback_metrics.items()})


def _trainer(steps, callbacks=(), **kwargs):
    return L.Trainer(max_steps=steps, accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                     callbacks=list(callbacks), **{"logger": False, **kwargs})


@pytest.mark.parametrize("reference", ["copy", "precomputed"])
def test_first_step_loss_is_the_zero_reward_value(images, reference):
    """At the start πθ = π0: rewards are 0, L_DPO = log 2, L_BCO = 2 log 2 (δ = 0), L_SFT = the policy's NLL."""
    module = CaptionerPreferenceLitModule(Captioner.from_parts(*build_preset("llava_tiny")), reference=reference)
    pairs = _pairs(images)
    module.precompute_reference(DataLoader(pairs, batch_size=3, collate_fn=list))
    module.eval()
    with torch.no_grad():
        out = module._step(module.on_before_batch_transfer(pairs, 0))
    assert out["dpo"].item() == pytest.approx(math.log(2), abs=1e-5)
    assert out["bco"].item() == pytest.approx(2 * math.log(2), abs=1e-5)
    assert out["chosen_rewards"].abs().max().item() < 1e-4
    assert out["loss"].item() == pytest.approx(0.8 * math.log(2) + out["sft"].item() + 0.2 * 2 * math.log(2),
                                               abs=1e-5)


@pytest.mark.parametrize("reference", ["copy", "precomputed"])
def test_training_separates_chosen_from_rejected(images, reference):
    L.seed_everything(0)
    module = CaptionerPreferenceLitModule(Captioner.from_parts(*build_preset("llava_tiny")), reference=reference,
                                          lr=2e-3, warmup_ratio=0.0, collapse_window=2)
    record = _RecordMetrics()
    _trainer(16, [record], enable_checkpointing=False).fit(module, datamodule=_Pairs(_pairs(images)))
    last = record.rows[-1]
    assert abs(record.rows[0]["train/rewards_margin"]) < 1e-4  # πθ = π0 at the first step
    assert last["train/rewards_margin"] > 0.2
    assert last["train/rewards_accuracy"] == 1.0
    assert module.reward_shift.count == 16 * 2 * 2  # 16 steps x 2 pairs x (chosen, rejected)
    assert record.rows[0]["train/delta"] == 0.0 and record.rows[-1]["train/delta"] != 0.0
    assert {"train/collapse", "train/rewards_chosen", "train/rewards_rejected"} <= set(last)


def test_checkpoint_restores_delta_and_reference_table(images, tmp_path):
    L.seed_everything(0)
    module = CaptionerPreferenceLitModule(Captioner.from_parts(*build_preset("llava_tiny")),
                                          reference="precomputed", lr=1e-3)
    trainer = _trainer(3, default_root_dir=tmp_path)
    trainer.fit(module, datamodule=_Pairs(_pairs(images)))
    path = tmp_path / "pref.ckpt"
    trainer.save_checkpoint(path)
    fresh = CaptionerPreferenceLitModule(Captioner.from_parts(*build_preset("llava_tiny")),
                                         reference="precomputed")
    fresh.on_load_checkpoint(torch.load(path, weights_only=True))
    assert fresh.reward_shift.state_dict() == module.reward_shift.state_dict()
    assert fresh.reward_shift.count == 3 * 4
    assert set(fresh.reference_logps) == {f"img-{i}" for i in range(4)}
    for key, value in module.reference_logps.items():
        assert fresh.reference_logps[key] == pytest.approx(value)


def test_precomputed_reference_needs_keys(images):
    module = CaptionerPreferenceLitModule(Captioner.from_parts(*build_preset("llava_tiny")),
                                          reference="precomputed")
    pairs = [{k: v for k, v in p.items() if k != "key"} for p in _pairs(images)]
    with pytest.raises(VLForgeError, match="key"):
        module.precompute_reference(DataLoader(pairs, batch_size=2, collate_fn=list))
    with pytest.raises(VLForgeError, match="reference 'frozen'"):
        CaptionerPreferenceLitModule(Captioner.from_parts(*build_preset("llava_tiny")), reference="frozen")


def test_validation_logs_the_policys_greedy_captions_of_fixed_pairs(images, tmp_path):
    from vlforge.captioner.generation.batched import generate_captions
    from vlforge.common.lm.lit_sft import SAMPLE_DECODING
    from vlforge.common.sample_outputs import SampleOutputsCallback

    L.seed_everything(0)
    captioner = Captioner.from_parts(*build_preset("llava_tiny"))
    module = CaptionerPreferenceLitModule(captioner, lr=2e-3, warmup_ratio=0.0)
    trainer = _trainer(4, [SampleOutputsCallback(2)], val_check_interval=2, check_val_every_n_epoch=None,
                       enable_checkpointing=False, num_sanity_val_steps=0, logger=L.pytorch.loggers.CSVLogger(tmp_path))
    trainer.fit(module, datamodule=_PairsWithValidation(_pairs(images)))
    rows = [json.loads(line) for line in (tmp_path / "lightning_logs/version_0/samples.jsonl").read_text().splitlines()]
    assert [(r["step"], r["example"]) for r in rows] == [(2, "img-0"), (2, "img-1"), (4, "img-0"), (4, "img-1")]
    assert all(r["prompt"] == "Describe the image." for r in rows)
    assert [r["reference"] for r in rows[2:]] == [chosen for chosen, _ in PAIRS[:2]]
    expected = generate_captions(captioner.model, captioner.processor, images[:2], "Describe the image.",
                                 SAMPLE_DECODING)
    assert [r["output"] for r in rows[2:]] == expected  # what the final policy writes on those images
