"""What a fit shows: status lines in a log file, the learning rate and train rows in metrics.csv, the end-of-fit
summary, and sample outputs on fixed validation examples (samples.jsonl / samples.md)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import lightning.pytorch as pl
import torch
from toy_lightning import ToyDataModule, ToyLitModule, ToyNet

from vlforge.common.cli import run_cli
from vlforge.common.progress import is_status_line
from vlforge.common.sample_outputs import SampleOutputsCallback

TOY_BASE = Path(__file__).parent / "toy" / "toy_base.yaml"


def test_a_fit_in_a_log_file_shows_status_lines_lr_train_rows_and_a_summary(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("VLFORGE_PROGRESS_INTERVAL", "0")
    monkeypatch.delenv("VLFORGE_PROGRESS", raising=False)
    code = run_cli("common", ["fit", "--config", str(TOY_BASE), "--run_root", str(tmp_path),
                              "--trainer.max_steps", "6", "--trainer.val_check_interval", "3",
                              "--trainer.enable_progress_bar", "true"])
    assert code == 0
    err = capsys.readouterr().err  # captured: not a terminal, so the log progress bar is used
    fit_lines = [line for line in err.splitlines() if line.startswith("fit: ") and is_status_line(line)]
    assert [line.split()[1] for line in fit_lines] == [f"{s}/6" for s in range(1, 7)] + ["6/6"]
    assert "train_loss" in fit_lines[0] and "epoch 0" in fit_lines[0]
    assert sum(line.startswith("validation at step") and "val_loss" in line for line in err.splitlines()) == 2
    summary = err[err.index("fit done: 6 steps"):].splitlines()
    assert any(line.split()[0] == "val_loss" for line in summary[1:3])

    rows = list(csv.DictReader(open(tmp_path / "common" / "version_0" / "metrics.csv")))
    train_steps = sorted({int(r["step"]) for r in rows if r.get("train_loss")})
    assert train_steps == list(range(6))  # a train row per step: short runs have a curve too
    learning_rates = [float(r["lr-AdamW"]) for r in rows if r.get("lr-AdamW")]
    assert len(learning_rates) == 6 and learning_rates[0] == 0.05 and learning_rates[1] < learning_rates[0]


class ToySampler(ToyLitModule):
    """The toy regressor 'writes' its prediction for an example, so sample outputs change as it learns."""

    def sample_outputs(self, examples):
        with torch.no_grad():
            return [f"{self.net(x[None]).item():.4f}" for x, _ in examples]


def test_sample_outputs_are_logged_on_the_same_validation_examples(tmp_path, capsys):
    pl.seed_everything(0)
    model = ToySampler(ToyNet())
    data = ToyDataModule(num_samples=32, batch_size=8)
    trainer = pl.Trainer(max_steps=8, val_check_interval=4, accelerator="cpu", enable_progress_bar=False,
                         enable_checkpointing=False, default_root_dir=tmp_path, num_sanity_val_steps=1,
                         logger=pl.loggers.CSVLogger(tmp_path), callbacks=[SampleOutputsCallback(num_examples=3)])
    trainer.fit(model, data)
    rows = [json.loads(line) for line in (Path(trainer.log_dir) / "samples.jsonl").read_text().splitlines()]
    assert [(r["step"], r["example"]) for r in rows] == [(4, "0"), (4, "1"), (4, "2"), (8, "0"), (8, "1"), (8, "2")]
    x0 = data.dataset[0][0]
    assert rows[-3]["output"] == f"{model.net(x0[None]).item():.4f}"  # the final model on the first example
    assert rows[0]["output"] != rows[3]["output"]  # the model changed between the validations
    table = (Path(trainer.log_dir) / "samples.md").read_text().splitlines()
    assert table[0] == "| step | example | prompt | reference | output |" and len(table) == 2 + 6
    assert capsys.readouterr().err.count("samples at step") == 2  # not at the sanity check
