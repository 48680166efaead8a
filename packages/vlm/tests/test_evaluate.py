"""`vlforge-vlm evaluate`: one checkpoint of a real `vlforge-vlm fit` run on several stores into one table;
the LitModule's own validation numbers; exported models; one-line errors for stores lacking captions."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from vlforge.common.checkpoint import export_checkpoint
from vlforge.common.cli import run_cli
from vlforge.common.console import console
from vlforge.common.errors import VLForgeError
from vlforge.common.metrics import read_metrics
from vlforge.common.progress import is_status_line
from vlforge.common.records import ImageRecord
from vlforge.common.sampling import CaptionChoice
from vlforge.common.store import CaptionStore
from vlforge.vlm.cli import TOOLS
from vlforge.vlm.cli import main as cli_main
from vlforge.vlm.compare import compare_metrics
from vlforge.vlm.evaluate import RECALL_COLUMNS
from vlforge.vlm.evaluation import encode_split, split_retrieval
from vlforge.vlm.loading import model_from_checkpoint
from vlforge.vlm.open_clip_export import export_open_clip_checkpoint


def main(argv: list[str]) -> int:
    """`vlforge-vlm evaluate ARGV` through the console (its exit code; errors as one line on stderr)."""
    return console("vlm", TOOLS, ["evaluate", *argv])


@pytest.fixture(scope="module")
def run_dir(shapes_store, tmp_path_factory) -> Path:
    """A tiny CLIP trained for 3 steps by the real console, validated on the val split at the end."""
    root = tmp_path_factory.mktemp("runs")
    code = run_cli("vlm", ["fit", "--config", "vlm:model/clip_tiny.yaml",
                           "--config", "vlm:data/shapes_alt_text_gt_short.yaml",
                           "--data.init_args.store", shapes_store, "--data.init_args.num_workers", "0",
                           "--data.init_args.batch_size", "16", "--trainer.max_steps", "3",
                           "--trainer.val_check_interval", "3", "--trainer.num_sanity_val_steps", "0",
                           "--trainer.enable_progress_bar", "false",
                           "--trainer.enable_model_summary", "false",
                           "--run_root", str(root)])
    assert code == 0
    return root / "vlm" / "version_0"


@pytest.fixture(scope="module")
def alt_text_only_store(shapes_store, tmp_path_factory) -> str:
    """The ShapesWorld store with only its alt-text captions (no gt captions, no negatives)."""
    source = CaptionStore(shapes_store, readonly=True)
    path = tmp_path_factory.mktemp("alt") / "alt_only"
    target = CaptionStore.create(path)
    records = [ImageRecord(r.image_id, r.split, r.width, r.height, r.captions_by(source="alt_text"),
                           image_bytes=r.image_bytes, meta=r.meta) for r in source.iter_records()]
    target.put_records(records)
    target.close()
    return str(path)


def test_one_checkpoint_on_two_stores_into_one_table(run_dir, shapes_store, alt_text_only_store, tmp_path,
                                                     capsys, monkeypatch):
    monkeypatch.setenv("VLFORGE_PROGRESS_INTERVAL", "0")  # a status line per batch, as in a log file
    monkeypatch.delenv("VLFORGE_PROGRESS", raising=False)
    out = tmp_path / "eval"
    code = main(["--checkpoint", str(run_dir / "checkpoints" / "last.ckpt"),
                 "--stores", f"[{shapes_store}, {alt_text_only_store}]", "--split", "val",
                 "--metrics", "[retrieval, zero_shot, linear_probe]", "--probe_train_split", "pool",
                 "--eval_captions", "{source: alt_text}", "--output_dir", str(out)])
    assert code == 0
    captured = capsys.readouterr()
    table = captured.out.strip().splitlines()
    status = [line for line in captured.err.splitlines() if is_status_line(line)]
    finished = [line.split(":")[0] for line in status if " (100.0 %), " in line]  # a final line per encoding pass
    assert finished.count("encode val images") >= 2 and finished.count("encode texts") >= 2, captured.err[-2000:]
    assert all("ETA" in line for line in status if " (100.0 %)" not in line)
    assert table[0].startswith("| dataset | t2i_r1 | t2i_r5 | t2i_r10 | i2t_r1 |")
    assert [row.split(" | ")[0] for row in table[2:]] == ["| store", "| alt_only"]
    metrics = read_metrics(out / "metrics.json")["results"]
    assert set(metrics) == {"store", "alt_only"}
    # same images, same alt-text captions: the two stores score the same
    assert metrics["store"]["retrieval"] == metrics["alt_only"]["retrieval"]
    assert set(metrics["store"]) == {"retrieval", "zero_shot", "linear_probe"}
    assert set(metrics["store"]["zero_shot"]) == {"shape", "colour", "count"}
    assert (out / "metrics.md").read_text().strip() == "\n".join(table)
    assert (out / "recall_bars.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_numbers_equal_the_lit_modules_own_validation(run_dir, shapes_store, tmp_path):
    """Retrieval and ARO over the val split's gt short captions, as ContrastiveLitModule logged them."""
    out = tmp_path / "eval"
    assert main(["--checkpoint", str(run_dir / "checkpoints" / "last.ckpt"), "--stores", f"[{shapes_store}]",
                 "--split", "val", "--metrics", "[retrieval, aro]", "--output_dir", str(out)]) == 0
    ours = read_metrics(out / "metrics.json")["results"]["store"]
    logged = read_metrics(run_dir / "metrics_fit.json")["metrics"]
    flat = {k.removeprefix("val/"): v for k, v in logged.items()}
    for key in RECALL_COLUMNS:
        assert ours["retrieval"][key] == pytest.approx(flat[key], abs=1e-3), key
    assert ours["aro"]["all"] == pytest.approx(flat["aro_all"], abs=1e-3)
    assert ours["aro"]["attribute_swap"] == pytest.approx(flat["aro_attribute_swap"], abs=1e-3)


def test_exported_models_evaluate_like_the_checkpoint(run_dir, shapes_store, tmp_path):
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    model, _ = model_from_checkpoint(checkpoint)
    model.eval()
    encoding = encode_split(model, shapes_store, "test", 32)
    expected = split_retrieval(model, encoding, CaptionChoice("gt", "short"))
    folders = {"open_clip": export_open_clip_checkpoint(checkpoint, tmp_path / "open_clip"),
               "vlforge": export_checkpoint(checkpoint, tmp_path / "vlforge", submodule="model")}
    for name, folder in folders.items():
        out = tmp_path / f"eval_{name}"
        assert main(["--checkpoint", str(folder), "--stores", f"[{shapes_store}]", "--metrics", "[retrieval]",
                     "--output_dir", str(out)]) == 0
        got = read_metrics(out / "metrics.json")["results"]["store"]["retrieval"]
        assert got == pytest.approx(expected, abs=1e-6), name


@pytest.mark.parametrize("metric, needs", [("retrieval", "captions with source=gt kind=short"),
                                           ("aro", "negative captions with a positive_text")])
def test_a_store_lacking_the_captions_a_metric_needs_is_one_line(run_dir, alt_text_only_store, tmp_path,
                                                                 monkeypatch, capsys, metric, needs):
    monkeypatch.setattr(sys, "argv", ["vlforge-vlm", "evaluate", "--checkpoint",
                                      str(run_dir / "checkpoints" / "last.ckpt"), "--stores",
                                      f"[{alt_text_only_store}]", "--metrics", f"[{metric}]",
                                      "--output_dir", str(tmp_path / "eval")])
    with pytest.raises(SystemExit) as exit_code:
        cli_main()  # the console script: `vlforge-vlm evaluate ...`
    assert exit_code.value.code == 2
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if not is_status_line(line)]  # progress is not the error
    assert len(lines) == 1 and "Traceback" not in err
    assert lines[0].startswith("vlforge-vlm evaluate: error: store ")
    assert alt_text_only_store in lines[0] and f"metric {metric} needs {needs}" in lines[0]


def test_bad_options_are_one_line(run_dir, tmp_path, capsys):
    checkpoint = str(run_dir / "checkpoints" / "last.ckpt")
    assert main(["--checkpoint", checkpoint, "--stores", "[x]", "--metrics", "[recall]",
                 "--output_dir", str(tmp_path)]) == 2
    assert "'recall' is not one of retrieval, zero_shot, aro, linear_probe" in capsys.readouterr().err
    assert main(["--checkpoint", str(tmp_path / "none.ckpt"), "--stores", "[x]",
                 "--output_dir", str(tmp_path)]) == 2
    assert "none.ckpt: no such file or folder" in capsys.readouterr().err
    assert main(["--stores", "[x]", "--output_dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "checkpoint" in err


def test_the_shipped_config_runs_every_metric(run_dir, shapes_store, tmp_path):
    out = tmp_path / "eval"
    assert main(["--config", "vlm:eval/shapes_full.yaml", "--checkpoint",
                 str(run_dir / "checkpoints" / "last.ckpt"), "--stores", f"[{shapes_store}]",
                 "--probe_train_split", "pool", "--output_dir", str(out)]) == 0
    result = read_metrics(out / "metrics.json")
    assert result["split"] == "test"
    assert set(result["results"]["store"]) == {"retrieval", "zero_shot", "aro", "linear_probe"}
    assert {"attribute_swap", "relation_swap", "object_replacement"} <= set(result["results"]["store"]["aro"])
    figures = {p.name for p in out.glob("*.png")}
    assert figures == {"recall_bars.png", "zero_shot.png", "aro.png", "linear_probe.png"}

    # two evaluations side by side (the second with fewer test images) in one figure each, and one table
    fewer = tmp_path / "fewer" / "eval"
    assert main(["--config", "vlm:eval/shapes_full.yaml", "--checkpoint",
                 str(run_dir / "checkpoints" / "last.ckpt"), "--stores", f"[{shapes_store}]", "--max_images", "8",
                 "--probe_train_split", "pool", "--output_dir", str(fewer)]) == 0
    written = compare_metrics([out / "metrics.json", fewer / "metrics.json"], tmp_path / "compare")
    assert {p.name for p in written} == {"compare.md", *figures}
    table = (tmp_path / "compare" / "compare.md").read_text().splitlines()
    assert [row.split("|")[1].strip() for row in table[2:]] == [tmp_path.name, "fewer"]
    for png in written[1:]:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert read_metrics(fewer / "metrics.json")["results"]["store"]["retrieval"]["num_images"] == 8
    mine = tmp_path / "again" / "compare.md"  # never onto an input: a metrics file where compare.md goes
    mine.parent.mkdir()
    mine.write_bytes((out / "metrics.json").read_bytes())
    with pytest.raises(VLForgeError, match="would overwrite the input"):
        compare_metrics([mine], mine.parent)
    assert read_metrics(mine)["results"]
