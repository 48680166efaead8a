"""Training curves of a real run folder, caption-length small multiples, score bars: PNGs with what they claim."""

from __future__ import annotations

from pathlib import Path

import pytest

from vlforge.common.cli import run_cli
from vlforge.common.errors import VLForgeError
from vlforge.common.metrics import plot_length_histograms, plot_score_bars
from vlforge.common.metrics.training_curves import main as plot_main
from vlforge.common.metrics.training_curves import plot_run, quantity, read_metrics_csv

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TOY_BASE = Path(__file__).parent / "toy" / "toy_base.yaml"


def test_metrics_share_a_panel_by_quantity():
    assert quantity("train/loss") == quantity("val/loss") == quantity("train_loss") == "loss"
    assert quantity("lr-AdamW/pg1") == "learning rate"
    assert quantity("val/t2i_r1") == quantity("val/t2i_r10") == "t2i recall (%)"
    assert quantity("val/aro_relation_swap") == "ARO accuracy (%)"


def test_plot_run_draws_the_curves_of_a_fit(tmp_path, capsys):
    assert run_cli("common", ["fit", "--config", str(TOY_BASE), "--run_root", str(tmp_path),
                              "--trainer.max_steps", "6", "--trainer.val_check_interval", "3"]) == 0
    run = tmp_path / "common" / "version_0"
    series = read_metrics_csv(run / "metrics.csv")
    assert [step for step, _ in series["train_loss"]] == list(range(6))
    assert [step for step, _ in series["val_loss"]] == [2, 5]
    assert len(series["lr-AdamW"]) == 6
    assert plot_main([str(run)]) == 0
    png = run / "curves.png"
    assert capsys.readouterr().out.strip() == str(png)
    assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 10_000
    assert plot_main([str(tmp_path)]) == 2
    assert "no metrics.csv" in capsys.readouterr().err
    with pytest.raises(VLForgeError, match="no metrics.csv"):
        plot_run(tmp_path)


def test_length_multiples_and_score_bars(tmp_path):
    lengths = {"alt_text": [3, 4, 5, 8], "gt:short": [9, 10, 12], "llava_dense": [20, 25, 31, 40, 41]}
    for png in (plot_length_histograms(lengths, tmp_path / "lengths.png"),
                plot_score_bars({"a": {"colour": 40.0, "shape": 20.0}, "b": {"colour": 55.0}}, tmp_path / "zs.png",
                                "Zero-shot", counts={"a": "10 images"}, chance={"colour": 12.5})):
        assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 5_000
    with pytest.raises(VLForgeError, match="nothing to plot"):
        plot_score_bars({}, tmp_path / "x.png", "Zero-shot")
