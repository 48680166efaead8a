"""The plan runner (experiments/run.py): every committed plan passes --dry-run (each console call parsed, configs
instantiated with run=False), plan mistakes are one line, `table` computes mean ± std and per-seed differences, and
a real miniature plan runs, is skipped when finished and re-runs the steps whose delta changed."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PLANS = sorted(REPO.glob("experiments/*/plans/*.yaml"))


@pytest.fixture
def runner(plan_runner):
    return plan_runner


def write_plan(path: Path, plan: dict) -> str:
    path.write_text(yaml.safe_dump(plan, sort_keys=False))
    return str(path)


def test_plans_are_committed() -> None:
    names = {p.relative_to(REPO).as_posix() for p in PLANS}
    assert {"experiments/vlm/plans/caption_mix.yaml", "experiments/vlm/plans/caption_mix_dev.yaml",
            "experiments/vlm/plans/hard_negatives.yaml",
            "experiments/vlm/plans/hard_negatives_dev.yaml", "experiments/vlm/plans/dense_sentences.yaml",
            "experiments/vlm/plans/minilm.yaml", "experiments/captioner/plans/grounding.yaml",
            "experiments/captioner/plans/collapse.yaml", "experiments/captioner/plans/earlier_store.yaml",
            "experiments/captioner/plans/formats.yaml"} <= names


def test_the_own_sample_generation_config_draws_two_samples() -> None:
    """experiments/captioner/earlier_store/own_samples.yaml (a generate config, which --dry-run only finds as YAML)."""
    from vlforge.captioner.generation.spec import load_generation_config

    config = load_generation_config(REPO / "experiments/captioner/earlier_store/own_samples.yaml")
    (captioner,) = config.captioners
    assert config.split == "pref" and not config.shear
    assert captioner.samples == 2 and captioner.decoding["do_sample"] and captioner.decoding["temperature"] == 1.0


def test_the_llava_runners_captioner_generation_config_is_greedy_dense_and_unsheared() -> None:
    """experiments/vlm/captioner/dense_pool.yaml (the captioner_dense condition's generate config)."""
    from vlforge.captioner.generation.spec import load_generation_config

    config = load_generation_config(REPO / "experiments/vlm/captioner/dense_pool.yaml")
    (captioner,) = config.captioners
    assert config.split == "pool" and not config.shear and captioner.name == "captioner_dense"
    assert captioner.format == "dense" and not captioner.decoding["do_sample"]


@pytest.mark.parametrize("plan", PLANS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_every_plan_passes_its_dry_run(plan: Path, tmp_path: Path, runner, capsys) -> None:
    assert runner.main(["run", str(plan), "--seeds", "0", "--dry-run", "--runs-root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    steps = [s for s in yaml.safe_load(plan.read_text())["steps"] if 0 in s.get("seeds", [0])]
    assert out.count(": call checked") == len(steps)
    assert not any((tmp_path / yaml.safe_load(plan.read_text())["name"]).glob("seed0/*/.done"))  # nothing ran


def test_dry_run_fails_on_a_broken_delta(tmp_path: Path, runner, capsys) -> None:
    delta = tmp_path / "delta.yaml"
    delta.write_text("model:\n  init_args:\n    no_such_argument: 1\n")
    plan = write_plan(tmp_path / "plan.yaml", {"name": "broken", "steps": [
        {"name": "fit", "call": ["vlm", "fit"], "configs": ["vlm:model/clip_tiny.yaml", "vlm:data/shapes_alt_text.yaml",
                                                          str(delta)]}]})
    assert runner.main(["run", plan, "--dry-run", "--runs-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("run.py: error:") and "no_such_argument" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("plan, message", [
    ({"name": "x", "steps": [], "extra": 1}, "unknown key 'extra'"),
    ({"steps": []}, "missing key 'name'"),
    ({"name": "x", "steps": [{"name": "a", "call": ["store", "shapes", "{b}/store"]}, {"name": "b", "call": ["vlm"]}]},
     "names {b}, not an earlier step"),
    ({"name": "x", "steps": [{"name": "a", "call": ["vlm", "evaluate"], "seed": 1}]}, "unknown key 'seed'"),
    ({"name": "x", "steps": [{"name": "a", "call": ["vlm", "evaluate"]}],
      "tables": [{"title": "t", "columns": {"c": "nope"}, "rows": {"r": "k"}}]}, "column step 'nope' is not a step"),
    ({"name": "x", "steps": [{"name": "a", "call": ["vlm", "no-such-tool"]}]}, "vlforge-vlm has no command"),
    ({"name": "x", "steps": [{"name": "a", "call": ["vlm", "evaluate"], "after": ["b"]}]},
     "step 'a': after 'b' is not an earlier step"),
    ({"name": "x", "variables": {"a": 1}, "steps": [{"name": "a", "call": ["vlm", "evaluate"]}]},
     "step 'a' has the name of a variable"),
])
def test_plan_mistakes_are_one_line(plan: dict, message: str, tmp_path: Path, runner, capsys) -> None:
    path = write_plan(tmp_path / "plan.yaml", plan)
    assert runner.main(["run", path, "--dry-run", "--runs-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


TABLE_PLAN = {
    "name": "tab",
    "steps": [{"name": name, "call": ["vlm", "evaluate"], "result": "m.json"}
              for name in ("a_eval", "a_eval_descriptive", "b_eval", "b_eval_descriptive")],
    "tables": [{"title": "A vs B", "columns": {"A": "a_eval", "B": "b_eval"}, "difference": True,
                "rows": {"r1": "results.r1", "r1 descriptive": "+_descriptive:results.r1"}}],
}


def finished(folder: Path, value: float) -> None:
    folder.mkdir(parents=True)
    (folder / "m.json").write_text(json.dumps({"results": {"r1": value}}))
    (folder / ".done").write_text("{}")


def test_table_gives_mean_std_and_per_seed_difference(tmp_path: Path, runner, capsys) -> None:
    a, b, b_desc = {0: 10.0, 1: 14.0, 2: 12.5}, {0: 20.0, 1: 15.0, 2: 30.0}, {0: 1.0, 1: 2.0, 2: 4.0}
    for seed in range(3):
        finished(tmp_path / "tab" / f"seed{seed}" / "a_eval", a[seed])
        finished(tmp_path / "tab" / f"seed{seed}" / "a_eval_descriptive", 0.0)
        finished(tmp_path / "tab" / f"seed{seed}" / "b_eval", b[seed])
        finished(tmp_path / "tab" / f"seed{seed}" / "b_eval_descriptive", b_desc[seed])
    (tmp_path / "tab" / "seed3" / "a_eval").mkdir(parents=True)  # unfinished: no .done, left out
    plan = write_plan(tmp_path / "plan.yaml", TABLE_PLAN)
    dump = tmp_path / "out" / "tab.json"
    assert runner.main(["table", plan, "--runs-root", str(tmp_path), "--json", str(dump)]) == 0
    out = capsys.readouterr().out
    diffs = [b[s] - a[s] for s in range(3)]
    expected = (f"| r1 | {statistics.mean(a.values()):.1f} ± {statistics.stdev(a.values()):.1f} | "
                f"{statistics.mean(b.values()):.1f} ± {statistics.stdev(b.values()):.1f} | "
                f"{statistics.mean(diffs):.1f} ± {statistics.stdev(diffs):.1f} (min {min(diffs):+.1f}) |")
    assert expected in out and "3 seeds: [0, 1, 2]" in out
    desc = (f"| r1 descriptive | 0.0 ± 0.0 | {statistics.mean(b_desc.values()):.1f} ± "
            f"{statistics.stdev(b_desc.values()):.1f} | {statistics.mean(b_desc.values()):.1f} ± "
            f"{statistics.stdev(b_desc.values()):.1f} (min +1.0) |")
    assert desc in out
    saved = json.loads(dump.read_text())["tables"][0]["values"]
    assert saved["B"]["r1"] == {str(s): v for s, v in b.items()}


def test_table_cell_of_a_missing_step_is_an_error(tmp_path: Path, runner, capsys) -> None:
    plan = dict(TABLE_PLAN, tables=[dict(TABLE_PLAN["tables"][0], rows={"r": "+_nope:results.r1"})])
    path = write_plan(tmp_path / "plan.yaml", plan)
    assert runner.main(["table", path, "--runs-root", str(tmp_path)]) == 2
    assert "reads step 'a_eval_nope'" in capsys.readouterr().err


@pytest.mark.slow
def test_a_miniature_plan_runs_skips_and_reruns_an_edited_delta(tmp_path: Path, runner, capsys) -> None:
    delta = tmp_path / "delta.yaml"
    delta.write_text("trainer: {max_steps: 2}\ndata: {init_args: {batch_size: 8, num_workers: 0, val_split: null}}\n")
    plan = write_plan(tmp_path / "plan.yaml", {"name": "mini", "seeds": [0, 1], "threads": 1, "steps": [
        {"name": "world", "shared": True,
         "call": ["store", "shapes", "{dir}/store", "--num-images", 150, "--seed", 0, "--image-size", 32, "--set",
                  'split_fractions={"pool": 0.6, "val": 0.2, "test": 0.2}']},
        {"name": "fit", "call": ["vlm", "fit"], "configs": ["vlm:model/clip_tiny.yaml", "vlm:data/shapes_alt_text.yaml",
                                                          str(delta)],
         "set": {"seed_everything": "{seed}", "data.init_args.store": "{world}/store"}},
        {"name": "eval", "call": ["vlm", "evaluate", "--metrics", "[retrieval]", "--checkpoint", "{fit:checkpoint}",
                                  "--stores", "[{world}/store]", "--output_dir", "{dir}"], "result": "metrics.json"}],
        "tables": [{"title": "mini", "columns": {"clip": "eval"}, "rows": {"t2i": "results.store.retrieval.t2i_r1"}}]})
    root = tmp_path / "runs" / "mini"
    args = ["run", plan, "--runs-root", str(tmp_path / "runs")]
    assert runner.main(args) == 0
    assert "5 step(s) ran" in capsys.readouterr().out  # world once, fit + eval per seed
    for seed in (0, 1):
        saved = yaml.safe_load((root / f"seed{seed}" / "fit" / "fit" / "version_0" / "config.yaml").read_text())
        assert saved["seed_everything"] == seed and saved["trainer"]["max_steps"] == 2
        assert "vlforge-vlm fit" in (root / f"seed{seed}" / "fit" / "command.sh").read_text()
    assert runner.main(args) == 0
    assert "0 step(s) ran" in capsys.readouterr().out
    delta.write_text(delta.read_text().replace("max_steps: 2", "max_steps: 3"))
    assert runner.main([*args, "--seeds", "1"]) == 0
    assert "2 step(s) ran" in capsys.readouterr().out  # fit and its evaluation, not the world
    saved = yaml.safe_load((root / "seed1" / "fit" / "fit" / "version_0" / "config.yaml").read_text())
    assert saved["trainer"]["max_steps"] == 3
    assert runner.main(["table", plan, "--runs-root", str(tmp_path / "runs")]) == 0
    values = [json.loads((root / f"seed{s}" / "eval" / "metrics.json").read_text())["results"]["store"]["retrieval"]
              ["t2i_r1"] for s in (0, 1)]
    assert f"| t2i | {statistics.mean(values):.1f} ± {statistics.stdev(values):.1f} |" in capsys.readouterr().out


def test_steps_must_include_the_steps_they_read(tmp_path: Path, runner, capsys) -> None:
    plan = write_plan(tmp_path / "plan.yaml", {"name": "sel", "steps": [
        {"name": "fit", "call": ["vlm", "fit"]},
        {"name": "eval", "call": ["vlm", "evaluate", "--checkpoint", "{fit:checkpoint}"]}]})
    assert runner.main(["run", plan, "--steps", "eval", "--dry-run", "--runs-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "step 'eval' reads step 'fit'; select it too" in err and len(err.splitlines()) == 1


def test_variables_fill_the_calls_and_the_inputs(tmp_path: Path, runner, capsys) -> None:
    plan = write_plan(tmp_path / "plan.yaml", {"name": "var", "variables": {"experiment": "runs/x/seed0"}, "steps": [
        {"name": "eval", "call": ["captioner", "evaluate", "--checkpoint", "{experiment}/a.ckpt", "--store",
                                  "{experiment}/store", "--split", "test", "--out", "{dir}"]},
        {"name": "other", "call": ["captioner", "evaluate", "--checkpoint", "b.ckpt", "--store", "s", "--split",
                                   "test", "--out", "{dir}"]}]})
    loaded = runner.load_plan(plan, str(tmp_path), {"experiment": "runs/y/seed1"})
    step = runner.Step(loaded["steps"][0], loaded, 0, {}, dry_run=True)
    args = step.args(tmp_path / "eval")
    assert args[args.index("--checkpoint") + 1] == "runs/y/seed1/a.ckpt" and "runs/y/seed1/store" in args
    assert step.inputs({})["variables"] == {"experiment": "runs/y/seed1"}  # another run folder: the step re-runs
    assert "variables" not in runner.Step(loaded["steps"][1], loaded, 0, {}, dry_run=True).inputs({})
    assert runner.main(["run", plan, "--dry-run", "--runs-root", str(tmp_path), "--var", "nope=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--var nope: not one of its variables (experiment)" in err and len(err.splitlines()) == 1


def test_after_orders_and_selects_steps_that_read_a_store(tmp_path: Path, runner, capsys) -> None:
    plan = write_plan(tmp_path / "plan.yaml", {"name": "after", "steps": [
        {"name": "samples", "call": ["captioner", "score", "--store", "s", "--source", "x"]},
        {"name": "train", "after": ["samples"], "call": ["captioner", "score", "--store", "s", "--source", "y"]}]})
    assert runner.main(["run", plan, "--steps", "train", "--dry-run", "--runs-root", str(tmp_path)]) == 2
    assert "step 'train' reads step 'samples'; select it too" in capsys.readouterr().err
    loaded = runner.load_plan(plan, str(tmp_path))
    steps = [runner.Step(spec, loaded, 0, {}, dry_run=True) for spec in loaded["steps"]]
    stages = runner.stage_runner(loaded, 0, steps, None, print, {}).stages
    assert [stage.after for stage in stages] == [(), ("samples",)]


@pytest.mark.slow
def test_the_own_worst_preference_chain_runs_at_a_tiny_scale(tmp_path: Path, runner, capsys) -> None:
    """The own-sample steps of experiments/captioner/plans/earlier_store.yaml with its committed deltas, on the tiny
    LLaVA and a 60-image store: SFT, 2 samples per pref image into the store, CHAIR_i scores, preference training
    on the most hallucinating sample of each image, evaluation."""
    deltas = "experiments/captioner/earlier_store"
    tiny = {"seed_everything": "{seed}", "data.init_args.store": "{world}/store",
            "model.init_args.captioner.init_args.source": "preset:llava_tiny", "trainer.enable_progress_bar": "false"}
    plan = write_plan(tmp_path / "plan.yaml", {"name": "own", "threads": 1, "steps": [
        {"name": "world", "shared": True,
         "call": ["store", "shapes", "{dir}/store", "--num-images", 60, "--seed", 0, "--image-size", 64, "--workers", 1,
                  "--set", 'split_fractions={"seed": 0.5, "pref": 0.3, "test": 0.2}']},
        {"name": "sft", "call": ["captioner", "fit"],
         "configs": ["captioner:model/sft_tiny.yaml", "captioner:data/shapes_sft.yaml", f"{deltas}/sft.yaml"],
         "set": {**tiny, "trainer.max_steps": 8, "data.init_args.batch_size": 8, "model.init_args.lr": 0.003}},
        {"name": "own_samples", "call": ["captioner", "generate", "--store", "{world}/store", "--config",
                                         f"{deltas}/own_samples.yaml", "--name", "sft_own_s{seed}", "--source",
                                         "preset:llava_tiny", "--checkpoint", "{sft:checkpoint}"]},
        {"name": "own_samples_score", "after": ["own_samples"],
         "call": ["captioner", "score", "--store", "{world}/store", "--source", "sft_own_s{seed}", "--split", "pref"]},
        {"name": "pref_own", "after": ["own_samples_score"], "call": ["captioner", "fit"],
         "configs": ["captioner:model/preference_tiny.yaml", "captioner:data/shapes_preference.yaml",
                     f"{deltas}/preference.yaml", f"{deltas}/own_worst.yaml"],
         "set": {**tiny, "trainer.max_steps": 3, "data.init_args.batch_size": 4,
                 "data.init_args.rejected": "source:sft_own_s{seed}",
                 "model.init_args.captioner.init_args.weights": "{sft:checkpoint}"}},
        {"name": "pref_own_eval", "call": ["captioner", "evaluate", "--checkpoint", "{pref_own:checkpoint}", "--store",
                                           "{world}/store", "--split", "test", "--limit", 4, "--max-new-tokens", 20,
                                           "--out", "{dir}"], "result": "metrics.json"}]})
    assert runner.main(["run", plan, "--runs-root", str(tmp_path / "runs")]) == 0
    assert "6 step(s) ran" in capsys.readouterr().out
    from vlforge.captioner.data import PreferencePairDataset
    from vlforge.common.store import CaptionStore

    store = tmp_path / "runs" / "own" / "shared" / "world" / "store"
    with CaptionStore(store) as opened:
        samples = [c for r in opened.iter_records(split="pref") for c in r.captions_by(source="sft_own_s0")]
    assert samples and all("chair_i" in c.scores and c.provenance["sample"] in (0, 1) for c in samples)
    worst = {caption.text: caption.scores["chair_i"] for caption in samples}
    pairs = PreferencePairDataset(str(store), "pref", chosen_kind="dense", rejected="source:sft_own_s0",
                                  score_above=0.0)
    assert 0 < len(pairs) and all(worst[pairs[i]["rejected"]] > 0 for i in range(len(pairs)))
    saved = yaml.safe_load(next((tmp_path / "runs" / "own" / "seed0" / "pref_own" / "fit").rglob("config.yaml"))
                           .read_text())
    data = saved["data"]["init_args"]
    assert data["rejected"] == "source:sft_own_s0" and data["score_above"] == 0
    metrics = json.loads((tmp_path / "runs" / "own" / "seed0" / "pref_own_eval" / "metrics.json").read_text())
    assert metrics["last"]["num_images"] == 4
