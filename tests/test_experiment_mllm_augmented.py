"""The MLLM-augmented experiment runner (experiments/mllm_augmented.py): a miniature end-to-end run of every
stage, skip/resume, and the real-data example checked by --dry-run (configs instantiated with run=False)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SHAPES = REPO / "experiments" / "shapes" / "mllm_augmented.yaml"
REAL = REPO / "experiments" / "real" / "mllm_augmented_cc3m.yaml"


def delta(tmp_path: Path, data: dict) -> str:
    path = tmp_path / "delta.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


MINIATURE = {
    "name": "mini",
    "threads": 1,
    "world": {
        "num_images": 400,
        "knobs": {"split_fractions": {"pool": 0.5, "seed": 0.3, "val": 0.1, "test": 0.1}},
    },
    "captioners": {
        n: {"train": {"config": {"trainer": {"max_steps": 3}}}}
        for n in ("llava_short", "qwen2vl_descriptive", "llava_dense")
    },
    "generation": {"limit": 40},
    "clip": {"max_steps": 3},
}


@pytest.mark.slow
def test_miniature_run_of_every_stage_then_skip(tmp_path: Path, capsys, mllm_runner) -> None:
    runner = mllm_runner
    configs = [str(SHAPES), delta(tmp_path, {**MINIATURE, "runs_root": str(tmp_path / "runs")})]
    assert runner.main([*configs, "--dry-run"]) == 0  # a dry run first must not get in the real run's way
    assert runner.main(configs) == 0
    root = tmp_path / "runs" / "mini"
    stages = [
        "world",
        "sft_llava_short",
        "sft_qwen2vl_descriptive",
        "sft_llava_dense",
        "caption_llava_short",
        "caption_qwen2vl_descriptive",
        "caption_llava_dense",
        "analyze",
        "clip_baseline",
        "clip_augmented",
    ]
    assert all((root / "seed0" / s / ".done").is_file() for s in stages)
    assert (root / "seed0" / "clip_augmented" / "command.sh").read_text().count("vlforge-vlm") == 2

    from vlforge.common.store import CaptionStore

    with CaptionStore(root / "seed0" / "world" / "store") as store:
        pool = store.ids("pool")[:40]
        for name in ("llava_short", "qwen2vl_descriptive", "llava_dense"):
            captioned = {r.image_id for r in store.iter_records(split="pool", source=name)}
            assert captioned == set(pool), name
    results = json.loads((root / "results.json").read_text())["results"]
    assert set(results) == {"baseline", "augmented"}
    first = json.loads((root / "seed0" / "clip_augmented" / "metrics.json").read_text())["metrics"]
    assert results["augmented"]["0"]["t2i_r1"] == first["t2i_r1"]  # the table holds what the stage measured
    report = (root / "report.md").read_text()
    assert "| augmented | alt_text + llava_short + qwen2vl_descriptive + llava_dense | 1 |" in report
    assert "Caption analysis per source" in report and "| llava_dense |" in report
    assert (root / "report_captioners.png").is_file()
    for figure in ("figures/recall_bars.png", "figures/zero_shot.png", "figures/aro.png",
                   "figures/curves_clip_augmented.png", "figures/curves_sft_llava_dense.png",
                   "seed0/analyze/lengths.png"):
        assert f"]({figure})" in report and (root / figure).is_file(), figure

    # each stage's progress is in its log and on the runner's console (stdout is not a terminal here)
    console = capsys.readouterr().out
    sft_log = (root / "seed0" / "sft_llava_short" / "log.txt").read_text()
    assert "fit: 3/3 steps (100.0 %)" in sft_log and "fit done: 3 steps" in sft_log
    assert "    sft_llava_short: fit: 3/3 steps (100.0 %)" in console
    assert "    caption_llava_short: predict: " in console
    assert "    clip_augmented: encode test images: " in console

    assert runner.main([*configs, "--only", "clip_augmented"]) == 0  # seeded: the same numbers again
    again = json.loads((root / "seed0" / "clip_augmented" / "metrics.json").read_text())["metrics"]
    assert again == first

    capsys.readouterr()
    assert runner.main(configs) == 0
    out = capsys.readouterr().out
    assert out.count("complete, skipped") == len(stages) and "0 stage(s) ran" in out

    # a captioner with the weights of another (the shearing ablation's long captioners): no training, the donor's
    # checkpoint, its own decoding; only its caption stage and the new CLIP run execute
    long = tmp_path / "long.yaml"
    long.write_text(yaml.safe_dump({
        "captioners": {"llava_dense_long": {"weights_of": "llava_dense", "generate": {
            "source": "preset:llava_small", "format": "dense", "decoding": {"max_new_tokens": 12}, "shear": False}}},
        "clip": {"runs": {"long": ["alt_text", "llava_dense_long"]}}}))
    assert runner.main([*configs, str(long)]) == 0
    assert "3 stage(s) ran" in capsys.readouterr().out  # caption_llava_dense_long, clip_long, analyze
    spec = json.loads((root / "seed0" / "caption_llava_dense_long" / "spec.json").read_text())
    donor = json.loads((root / "seed0" / "caption_llava_dense" / "spec.json").read_text())
    assert spec["checkpoint"] == donor["checkpoint"] and spec["decoding"] == {"max_new_tokens": 12}
    assert not (root / "seed0" / "sft_llava_dense_long").exists()


def test_real_data_example_instantiates_in_a_dry_run(tmp_path: Path, capsys, mllm_runner) -> None:
    runner = mllm_runner
    configs = [str(REAL), delta(tmp_path, {"runs_root": str(tmp_path / "runs")})]
    assert runner.main(configs + ["--dry-run"]) == 0
    out = capsys.readouterr().out
    for stage in ("caption_qwen2_vl_2b", "caption_llava_1_5_7b", "clip_baseline", "clip_augmented"):
        assert f"{stage}: config checked" in out
    seed_dir = tmp_path / "runs" / "mllm_augmented_cc3m" / "seed0"
    config = yaml.safe_load((seed_dir / "clip_augmented" / "config.yaml").read_text())
    assert config["data"]["init_args"]["sampling"] == "per_caption"
    assert [c["source"] for c in config["data"]["init_args"]["train_captions"]] == [
        "alt_text",
        "qwen2_vl_2b",
        "llava_1_5_7b",
    ]
    caption = yaml.safe_load((seed_dir / "caption_qwen2_vl_2b" / "config.yaml").read_text())
    assert caption["model"]["init_args"]["captioner"]["source"] == "Qwen/Qwen2-VL-2B-Instruct"
    assert not any((seed_dir / s / ".done").exists() for s in ("clip_baseline", "caption_qwen2_vl_2b"))


def test_experiment_config_mistakes_are_one_line_errors(tmp_path: Path, capsys, mllm_runner) -> None:
    runner = mllm_runner
    bad_run = delta(tmp_path, {"clip": {"runs": {"odd": ["alt_text", "nobody"]}}})
    assert runner.main([str(SHAPES), bad_run, "--dry-run"]) == 2
    assert "clip run 'odd' uses captions of 'nobody'" in capsys.readouterr().err
    borrower = delta(tmp_path, {"captioners": {"x": {"weights_of": "nobody",
                                                     "generate": {"source": "preset:llava_small"}}}})
    assert runner.main([str(SHAPES), borrower, "--dry-run"]) == 2
    assert "captioner 'x' takes the weights of 'nobody'" in capsys.readouterr().err
    (tmp_path / "typo.yaml").write_text("captioner: {}\n")
    assert runner.main([str(SHAPES), str(tmp_path / "typo.yaml")]) == 2
    assert "unknown key 'captioner'" in capsys.readouterr().err


def test_ablations_stack_over_the_experiment_in_a_dry_run(tmp_path: Path, capsys, mllm_runner) -> None:
    runner = mllm_runner
    shapes = REPO / "experiments" / "shapes"
    ablations = [str(shapes / f"ablation_{n}.yaml") for n in ("captioners", "shearing", "length", "oracle")]
    assert runner.main([str(SHAPES), *ablations, delta(tmp_path, {"runs_root": str(tmp_path / "runs")}),
                        "--dry-run"]) == 0
    out = capsys.readouterr().out
    for stage in ("caption_llava_dense_long", "clip_k1", "clip_k2", "clip_long_unsheared", "clip_long_sheared",
                  "clip_long_T4", "clip_long_T32", "clip_oracle_gt"):
        assert f"{stage}: config checked" in out, stage
    assert "sft_llava_dense_long" not in out


def test_a_stage_command_s_progress_reaches_its_log_and_the_console(tmp_path: Path, capsys, mllm_runner) -> None:
    import sys

    folder = tmp_path / "sft_x"
    folder.mkdir()
    script = ("import sys; print('Seed set to 0'); "
              "print('fit: 1/2 steps (50.0 %), 1.0 steps/s, elapsed 1 s, ETA 1 s', file=sys.stderr); "
              "print('fit done: 2 steps, 1 epochs in 2 s')")
    mllm_runner.Console(threads=1)(folder, [sys.executable, "-c", script])
    log = (folder / "log.txt").read_text()
    assert "Seed set to 0" in log and "fit: 1/2 steps (50.0 %)" in log and "fit done: 2 steps" in log
    console = capsys.readouterr().out.splitlines()
    assert console == ["    sft_x: fit: 1/2 steps (50.0 %), 1.0 steps/s, elapsed 1 s, ETA 1 s",
                       "    sft_x: fit done: 2 steps, 1 epochs in 2 s"]


def test_small_outcome_and_threads_deltas_stack_over_the_experiment(tmp_path: Path, capsys, mllm_runner) -> None:
    """The default run's small main job (experiments/shapes/small_outcome.yaml) drops two captioners and a curve
    point by setting them to null; threads1.yaml is the delta behind the 3-seed table of docs/results.md;
    eval_val.yaml moves the evaluation to the val split (for choosing a setting); small_sft300.yaml is the
    300-step captioner that choice ruled out."""
    shapes = REPO / "experiments" / "shapes"
    configs = [str(SHAPES), str(shapes / "small_outcome.yaml"), str(shapes / "threads1.yaml")]
    exp = mllm_runner.load_experiment(configs)
    assert list(exp["captioners"]) == ["llava_short"] and exp["threads"] == 1
    assert exp["report"]["curve"] == {0: "baseline", 1: "augmented"}
    assert exp["clip"]["runs"] == {"baseline": ["alt_text"], "augmented": ["alt_text", "llava_short"]}
    assert mllm_runner.load_experiment([str(SHAPES), str(shapes / "threads1.yaml")])["threads"] == 1
    assert mllm_runner.load_experiment([str(SHAPES)])["threads"] == 2
    on_val = mllm_runner.load_experiment([*configs, str(shapes / "eval_val.yaml")])
    assert on_val["clip"]["evaluation"] == {"split": "val"} and "evaluation" not in exp["clip"]
    sft300 = mllm_runner.load_experiment([*configs[:2], str(shapes / "small_sft300.yaml"), *configs[2:]])
    assert sft300["captioners"]["llava_short"]["train"]["config"]["trainer"]["max_steps"] == 300
    assert exp["captioners"]["llava_short"]["train"]["config"]["trainer"]["max_steps"] == 600

    assert mllm_runner.main([*configs, delta(tmp_path, {"runs_root": str(tmp_path / "runs")}), "--dry-run"]) == 0
    checked = [line.split("] ")[1].split(":")[0] for line in capsys.readouterr().out.splitlines()
               if "config checked" in line]
    assert checked == ["world", "sft_llava_short", "caption_llava_short", "analyze", "clip_baseline",
                       "clip_augmented"]
    seed_dir = tmp_path / "runs" / "mllm_augmented_small" / "seed0"
    clip = yaml.safe_load((seed_dir / "clip_augmented" / "config.yaml").read_text())
    assert clip["trainer"]["max_steps"] == 400
    assert [c["source"] for c in clip["data"]["init_args"]["train_captions"]] == ["alt_text", "llava_short"]
    sft = yaml.safe_load((seed_dir / "sft_llava_short" / "config.yaml").read_text())
    assert sft["trainer"]["max_steps"] == 600
