"""CaptionerSFTLitModule with a real Lightning Trainer on the tiny LLaVA preset."""

import json

import lightning as L
import torch
from torch.utils.data import DataLoader

from vlforge.captioner.captioner import Captioner
from vlforge.captioner.lit_sft import CaptionerSFTLitModule, model_inputs
from vlforge.captioner.model_setup import FreezePolicy

CAPTIONS = ["A red circle.", "Two blue squares on a white background.", "A green star above a yellow hexagon.",
            "A small black diamond."]


def _examples(images):
    return [{"image": img, "instruction": "Describe the image.", "response": c} for img, c in zip(images, CAPTIONS)]


def test_response_loss_equals_transformers_own_loss(llava, images):
    model, processor = llava
    module = CaptionerSFTLitModule(Captioner.from_parts(model, processor))
    batch = module.on_before_batch_transfer(_examples(images), 0)
    with torch.no_grad():
        ours = module.response_nll(batch)
        theirs = model(**model_inputs(batch), labels=batch["labels"]).loss
    torch.testing.assert_close(ours, theirs)


def test_fit_learns_the_captions_and_respects_the_freezing_policy(llava, images):
    model, processor = llava
    L.seed_everything(0)
    captioner = Captioner.from_parts(model, processor, freeze=FreezePolicy(vision_tower=False, projector=True,
                                                                             llm=True))
    module = CaptionerSFTLitModule(captioner, lr=3e-3, warmup_ratio=0.1)
    vision_before = model.model.vision_tower.embeddings.patch_embedding.weight.clone()
    projector_before = model.model.multi_modal_projector.linear_1.weight.clone()
    batch = module.on_before_batch_transfer(_examples(images), 0)
    with torch.no_grad():
        loss_before = module.response_nll(batch).item()
    loader = DataLoader(_examples(images), batch_size=4, collate_fn=list)
    trainer = L.Trainer(max_steps=40, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, loader)
    with torch.no_grad():
        loss_after = module.response_nll(batch).item()
    assert loss_after < 0.3 * loss_before, (loss_before, loss_after)
    torch.testing.assert_close(model.model.vision_tower.embeddings.patch_embedding.weight, vision_before)
    assert not torch.equal(model.model.multi_modal_projector.linear_1.weight, projector_before)


def test_validation_logs_the_captioners_own_greedy_captions_of_fixed_examples(llava, images, tmp_path):
    from vlforge.captioner.generation.batched import generate_captions
    from vlforge.captioner.lit_sft import SAMPLE_DECODING
    from vlforge.common.sample_outputs import SampleOutputsCallback

    model, processor = llava
    L.seed_everything(0)
    module = CaptionerSFTLitModule(Captioner.from_parts(model, processor), lr=3e-3, warmup_ratio=0.1)
    loader = DataLoader(_examples(images), batch_size=4, collate_fn=list)
    trainer = L.Trainer(max_steps=4, val_check_interval=2, check_val_every_n_epoch=None, accelerator="cpu",
                        enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        logger=L.pytorch.loggers.CSVLogger(tmp_path), callbacks=[SampleOutputsCallback(2)])
    trainer.fit(module, loader, loader)
    rows = [json.loads(line) for line in (tmp_path / "lightning_logs/version_0/samples.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [2, 2, 4, 4]
    assert [r["reference"] for r in rows[2:]] == CAPTIONS[:2]
    expected = generate_captions(model, processor, images[:2], ["Describe the image."] * 2, SAMPLE_DECODING)
    assert [r["output"] for r in rows[2:]] == expected  # what the final model writes on those images
