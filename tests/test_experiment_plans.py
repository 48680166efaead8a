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
            "experiments/captioner/plans/collapse.yaml", "experiments/captioner/plans/earlier_store.yaml"} <= names


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
