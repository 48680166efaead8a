"""BlipLitModule with real Lightning trainers on a ShapesWorld store: the three objectives train and the loss
falls, evaluation logs ITC and ITM-re-ranked retrieval and ARO, owner keys group pairs of one image, bad
settings fail."""

from __future__ import annotations

import math
import statistics

import lightning as L
import pytest
import torch

from vlforge.common.errors import VLForgeError
from vlforge.vlm.data import ContrastiveDataModule
from vlforge.vlm.lit_blip import BlipLitModule, owner_keys
from vlforge.vlm.models.blip import BlipPretrainingModel


class LossHistory(L.Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        self.losses.append(float(outputs["loss"]))


def _model() -> BlipPretrainingModel:
    return BlipPretrainingModel(image_size=32, text={"max_position_embeddings": 64}, max_length=40)


def _trainer(tmp_path, steps: int, callbacks=(), val_batches: int = 1) -> L.Trainer:
    return L.Trainer(max_steps=steps, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                     num_sanity_val_steps=0, limit_val_batches=val_batches, val_check_interval=steps,
                     check_val_every_n_epoch=None,
                     callbacks=list(callbacks))


def _datamodule(store: str, **kwargs) -> ContrastiveDataModule:
    defaults = {"train_captions": [{"source": "gt", "kind": "short"}], "batch_size": 16,
                "eval_batch_size": 24}
    return ContrastiveDataModule(store, **(defaults | kwargs))


def _reference_itm_metrics(module: BlipLitModule, datamodule: ContrastiveDataModule, k: int) -> dict[str, float]:
    """ITM re-ranked text→image ranks and ITM ARO accuracy over the first val batch, recomputed with one ITM forward
    pass per (image, text) pair: a text's own image ranks k + 1 outside its ITC top k (the images left out all tie
    below the top k, and ties count in its favour), else 1 + the top-k images whose ITC + ITM score beats its own."""
    batch = next(iter(datamodule.val_dataloader()))
    model = module.model.eval()
    texts = [t for texts in batch["texts"] for t in texts]
    owners = [i for i, texts in enumerate(batch["texts"]) for _ in texts]
    with torch.no_grad():
        embeddings = model.image_embeddings(batch["images"])
        itc = model.image_features(embeddings) @ module._encode_texts(texts).T

        def matched(image: int, text: str) -> float:
            tokens = model.tokenize([text])
            logits = model.itm_logits(embeddings[image:image + 1], tokens["input_ids"], tokens["attention_mask"])
            return logits[0, 1].item()

        ranks = []
        for t, (text, owner) in enumerate(zip(texts, owners)):
            top = itc[:, t].topk(k).indices.tolist()
            scores = {i: itc[i, t].item() + matched(i, text) for i in top}
            ranks.append(1 + sum(s > scores[owner] for s in scores.values()) if owner in scores else k + 1)
        pairs = [(i, pos, neg, kind) for i, negs in enumerate(batch["negatives"]) for pos, neg, kind in negs]
        wins = [(matched(i, pos) > matched(i, neg), kind) for i, pos, neg, kind in pairs]
    swaps = [won for won, kind in wins if kind == "attribute_swap"]
    assert swaps
    return {"itm_t2i_r1": 100 * sum(r == 1 for r in ranks) / len(ranks),
            "itm_t2i_median_rank": float(statistics.median(ranks)),
            "itm_aro_all": 100 * sum(won for won, _ in wins) / len(wins),
            "itm_aro_attribute_swap": 100 * sum(swaps) / len(swaps)}


@pytest.mark.slow
def test_blip_trains_its_three_objectives_and_the_loss_falls(shapes_store, tmp_path, reference_val_metrics):
    L.seed_everything(0)
    module = BlipLitModule(_model(), lr=3e-3, itm_rerank_k=5)
    history = LossHistory()
    trainer = _trainer(tmp_path, 12, [history])
    trainer.fit(module, _datamodule(shapes_store, negatives_per_image=1, batch_size=8))
    metrics = trainer.callback_metrics
    for name in ("itc", "itm", "lm"):
        assert math.isfinite(metrics[f"train/{name}"].item()), name
    first, last = sum(history.losses[:3]) / 3, sum(history.losses[-3:]) / 3
    assert last < first - 1.0, history.losses  # mostly the LM term, from ln(1025) ~ 6.9 at init
    reference = reference_val_metrics(module, _datamodule(shapes_store))
    for key in ("t2i_r1", "i2t_r10", "aro_all"):
        assert metrics[f"val/{key}"].item() == pytest.approx(reference[key], abs=1e-4), key
    # ITM re-ranks within the ITC top k = 5: which texts are in an image's top 5 does not change
    assert metrics["val/itm_i2t_r5"].item() == pytest.approx(reference["i2t_r5"], abs=1e-4)
    reference = _reference_itm_metrics(module, _datamodule(shapes_store), k=5)
    for key, value in reference.items():
        assert metrics[f"val/{key}"].item() == pytest.approx(value, abs=1e-4), key


def test_zero_weights_skip_their_objectives(shapes_store, tmp_path):
    L.seed_everything(0)
    module = BlipLitModule(_model(), itc_weight=0.0, lm_weight=0.0)
    before = {k: v.clone() for k, v in module.model.state_dict().items()}
    trainer = _trainer(tmp_path, 2)
    trainer.fit(module, _datamodule(shapes_store))
    assert "train/itm" in trainer.callback_metrics and "train/lm" not in trainer.callback_metrics
    metrics = trainer.callback_metrics
    assert metrics["train/loss"].item() == pytest.approx(metrics["train/itm"].item())
    changed = {k.split(".")[0] for k, v in module.model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {"vision_model", "text_encoder", "itm_head"}  # no decoder, projections or temperature


def test_itm_rerank_keeps_the_top_k_and_evaluates_like_itc_outside(shapes_store, tmp_path):
    """With k = all candidates and a zero ITM head, re-ranking keeps the ITC order: same recalls as ITC."""
    L.seed_everything(0)
    module = BlipLitModule(_model(), itm_rerank_k=1000)
    with torch.no_grad():
        module.model.itm_head.weight.zero_()
        module.model.itm_head.bias.zero_()
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=1, default_root_dir=tmp_path)
    metrics = trainer.validate(module, _datamodule(shapes_store), verbose=False)[0]
    for key in ("t2i_r1", "t2i_r5", "i2t_r1", "i2t_r5", "t2i_median_rank"):
        assert metrics[f"val/itm_{key}"] == pytest.approx(metrics[f"val/{key}"]), key
    assert metrics["val/itm_aro_all"] == 0.0  # equal ITM scores are ties, and ties count as failures


def test_owner_keys_group_the_pairs_of_one_image():
    images = torch.randn(3, 3, 4, 4)
    batch = {"images": torch.stack([images[0], images[1], images[0], images[2], images[1]])}
    keys = owner_keys(batch).tolist()
    assert keys[0] == keys[2] and keys[1] == keys[4] and len(set(keys)) == 3
    batch["image_ids"] = ["a", "b", "c", "a", "c"]  # ids, when the batch has them, win over pixels
    keys = owner_keys(batch).tolist()
    assert keys[0] == keys[3] and keys[2] == keys[4] and len(set(keys)) == 3


def test_bad_settings_are_refused():
    model = _model()
    with pytest.raises(VLForgeError, match="at least one > 0"):
        BlipLitModule(model, itc_weight=0.0, itm_weight=0.0, lm_weight=0.0)
    with pytest.raises(VLForgeError, match="must be >= 0"):
        BlipLitModule(model, itm_weight=-1.0)
    with pytest.raises(VLForgeError, match="itm_rerank_k"):
        BlipLitModule(model, itm_rerank_k=-2)


def test_nan_loss_stops_the_run_naming_the_step(shapes_store, tmp_path):
    module = BlipLitModule(_model())
    with torch.no_grad():
        module.model.logit_scale.fill_(float("nan"))
    with pytest.raises(VLForgeError, match=r"loss is nan at step 0"):
        _trainer(tmp_path, 2).fit(module, _datamodule(shapes_store))
