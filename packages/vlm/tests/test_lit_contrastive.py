"""ContrastiveLitModule with real Lightning trainers on a ShapesWorld store: CLIP with hard negatives, SigLIP,
evaluation metrics, a NaN loss stopping the run."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch

from vlforge.common.errors import VLForgeError
from vlforge.vlm.data import ContrastiveDataModule
from vlforge.vlm.lit_contrastive import ContrastiveLitModule
from vlforge.vlm.losses import SigLipLoss, clip_loss
from vlforge.vlm.models import ContrastiveModel, OpenClipImageTower, OpenClipTextTower


def _model(config: dict, bias: float | None = None) -> ContrastiveModel:
    return ContrastiveModel(OpenClipImageTower(config), OpenClipTextTower(config), init_logit_bias=bias)


def _trainer(tmp_path, steps: int) -> L.Trainer:
    return L.Trainer(max_steps=steps, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                     num_sanity_val_steps=0, limit_val_batches=1, val_check_interval=steps)


def _datamodule(store: str, **kwargs) -> ContrastiveDataModule:
    return ContrastiveDataModule(store, **({"train_captions": [{"source": "gt", "kind": "short"}], "batch_size": 16,
                                            "eval_batch_size": 32} | kwargs))


def test_clip_with_hard_negatives_trains_and_evaluates(shapes_store, tiny_open_clip, tmp_path, reference_val_metrics):
    torch.manual_seed(0)
    module = ContrastiveLitModule(_model(tiny_open_clip), lr=1e-3)
    before = {k: v.clone() for k, v in module.model.state_dict().items()}
    trainer = _trainer(tmp_path, 3)
    trainer.fit(module, _datamodule(shapes_store, negatives_per_image=1))
    metrics = trainer.callback_metrics
    assert math.isfinite(metrics["train/loss"].item())
    reference = reference_val_metrics(module, _datamodule(shapes_store))
    for key, value in reference.items():
        assert metrics[f"val/{key}"].item() == pytest.approx(value, abs=1e-4), key
    changed = [k for k, v in module.model.state_dict().items() if not torch.equal(v, before[k])]
    assert "logit_scale" in changed and any(k.startswith("image_tower.") for k in changed)


def test_siglip_trains_and_needs_a_bias(shapes_store, tiny_open_clip, tmp_path):
    with pytest.raises(VLForgeError, match="logit bias"):
        ContrastiveLitModule(_model(tiny_open_clip), loss=SigLipLoss())
    module = ContrastiveLitModule(_model(tiny_open_clip, bias=-10.0), loss=SigLipLoss())
    trainer = _trainer(tmp_path, 2)
    trainer.fit(module, _datamodule(shapes_store))
    assert math.isfinite(trainer.callback_metrics["train/loss"].item())
    assert module.model.logit_bias.item() != -10.0


def test_nan_loss_stops_the_run_naming_the_step(shapes_store, tiny_open_clip, tmp_path):
    module = ContrastiveLitModule(_model(tiny_open_clip))
    with torch.no_grad():
        module.model.logit_scale.fill_(float("nan"))
    with pytest.raises(VLForgeError, match=r"loss is nan at step 0"):
        _trainer(tmp_path, 2).fit(module, _datamodule(shapes_store))


def test_the_former_learning_rate_name_still_loads_and_sets_lr(tiny_open_clip):
    """Run configs and checkpoints saved before ``lr`` (the name every LitModule shares) keep loading."""
    with pytest.warns(DeprecationWarning, match="'learning_rate' is now 'lr'"):
        module = ContrastiveLitModule(_model(tiny_open_clip), learning_rate=2e-3, warmup_ratio=0.1)
    assert module.hparams.lr == 2e-3 and "learning_rate" not in module.hparams
    assert module.hparams.warmup_ratio == 0.1


def test_training_step_feeds_the_batch_hard_negatives_into_the_loss(shapes_store, tiny_open_clip):
    """Wiring: the step's loss is InfoNCE over the encoded batch with its encoded hard negatives as extra texts,
    and without negatives it is the plain loss, a different number."""
    torch.manual_seed(0)
    module = ContrastiveLitModule(_model(tiny_open_clip))
    batch = next(iter(_datamodule(shapes_store, negatives_per_image=1, batch_size=8).train_dataloader()))
    assert len(batch["negatives"]) == len(batch["texts"]) == 8
    with torch.no_grad(), pytest.warns(UserWarning, match="self.log"):  # no Trainer attached: log() is a no-op
        loss = module.training_step(batch, 0)
        plain = module.training_step({**batch, "negatives": []}, 0)
        images = module.model.encode_image(batch["images"])
        texts, negatives = module._encode_texts(batch["texts"]), module._encode_texts(batch["negatives"])
        scale = module.model.scale()
        assert loss.item() == pytest.approx(clip_loss(images, texts, scale, negative_text_features=negatives).item(),
                                            rel=1e-5)
        assert plain.item() == pytest.approx(clip_loss(images, texts, scale).item(), rel=1e-5)
    assert loss.item() > plain.item() + 1e-3  # more candidate texts per image: a larger InfoNCE loss


def test_weights_start_the_model_from_a_trained_checkpoint(shapes_store, tiny_open_clip, tmp_path):
    torch.manual_seed(0)
    trained = ContrastiveLitModule(_model(tiny_open_clip), lr=1e-3)
    trainer = L.Trainer(max_steps=2, accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path, limit_val_batches=0)
    trainer.fit(trained, _datamodule(shapes_store))
    checkpoint = tmp_path / "trained.ckpt"
    trainer.save_checkpoint(checkpoint)
    torch.manual_seed(1)
    fresh = _model(tiny_open_clip)
    assert not torch.equal(fresh.state_dict()["logit_scale"], trained.model.state_dict()["logit_scale"])
    started = ContrastiveLitModule(fresh, lr=5e-4, weights=str(checkpoint))
    expected = trained.model.state_dict()
    assert all(torch.equal(value, expected[key]) for key, value in started.model.state_dict().items())
    wider = dict(tiny_open_clip, embed_dim=tiny_open_clip["embed_dim"] * 2)
    with pytest.raises(VLForgeError, match="trained.ckpt.*shape"):
        ContrastiveLitModule(_model(wider), weights=str(checkpoint))
