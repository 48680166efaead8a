"""The stage runner: complete stages are skipped, a failed stage re-runs alone, upstream re-runs propagate."""

from __future__ import annotations

from pathlib import Path

import pytest

from vlforge.common.errors import VLForgeError
from vlforge.common.stages import Stage, StageRunner


class Recorder:
    """Stage bodies that write an output file and count their runs; ``fail`` names stages that raise once."""

    def __init__(self, fail: set[str] | None = None) -> None:
        self.calls: list[str] = []
        self.fail = set(fail or ())

    def body(self, name: str):
        def run(folder: Path) -> None:
            self.calls.append(name)
            (folder / "partial.txt").write_text("started")
            if name in self.fail:
                self.fail.discard(name)
                raise RuntimeError(f"{name} broke")
            (folder / "out.txt").write_text(name)

        return run


def pipeline(rec: Recorder, inputs: dict | None = None, resume: bool = False) -> list[Stage]:
    inputs = inputs or {}
    return [
        Stage("a", rec.body("a"), inputs.get("a", {})),
        Stage("b", rec.body("b"), inputs.get("b", {}), after=("a",), resume=resume),
        Stage("c", rec.body("c"), {}, after=("b",)),
    ]


def test_second_run_skips_every_complete_stage(tmp_path: Path) -> None:
    rec, lines = Recorder(), []
    first = StageRunner(tmp_path, pipeline(rec), log=lines.append).run()
    assert [r.status for r in first] == ["ran", "ran", "ran"] and rec.calls == ["a", "b", "c"]
    assert all((tmp_path / s / ".done").is_file() for s in "abc")
    second = StageRunner(tmp_path, pipeline(rec), log=lines.append).run()
    assert [r.status for r in second] == ["skipped"] * 3 and rec.calls == ["a", "b", "c"]
    assert any("b: complete, skipped" in line for line in lines)
    assert any(line.startswith("[2/3] b: done in") and "CPU" in line for line in lines)


def test_a_failed_stage_reruns_alone(tmp_path: Path) -> None:
    rec = Recorder(fail={"b"})
    with pytest.raises(RuntimeError, match="b broke"):
        StageRunner(tmp_path, pipeline(rec)).run()
    assert not (tmp_path / "b" / ".done").exists() and not (tmp_path / "c").exists()
    results = StageRunner(tmp_path, pipeline(rec)).run()
    assert [r.status for r in results] == ["skipped", "ran", "ran"]
    assert rec.calls == ["a", "b", "b", "c"]


def test_rerun_wipes_the_stage_folder_unless_it_resumes(tmp_path: Path) -> None:
    for resume, partial_kept in ((False, False), (True, True)):
        root = tmp_path / str(resume)
        rec = Recorder(fail={"b"})
        with pytest.raises(RuntimeError):
            StageRunner(root, pipeline(rec, resume=resume)).run()
        (root / "b" / "leftover.txt").write_text("from the interrupted run")
        StageRunner(root, pipeline(rec, resume=resume)).run()
        assert (root / "b" / "leftover.txt").exists() == partial_kept
        assert (root / "b" / "out.txt").read_text() == "b"


def test_changed_inputs_rerun_the_stage_and_everything_after_it(tmp_path: Path) -> None:
    rec = Recorder()
    StageRunner(tmp_path, pipeline(rec, {"b": {"steps": 1}})).run()
    results = StageRunner(tmp_path, pipeline(rec, {"b": {"steps": 2}})).run()
    assert [r.status for r in results] == ["skipped", "ran", "ran"]


def test_only_reruns_one_stage_and_downstream_follows_next_time(tmp_path: Path) -> None:
    rec = Recorder()
    StageRunner(tmp_path, pipeline(rec)).run()
    only = StageRunner(tmp_path, pipeline(rec)).run(only="a")
    assert [r.name for r in only] == ["a"] and rec.calls[-1] == "a"
    results = StageRunner(tmp_path, pipeline(rec)).run()
    assert [r.status for r in results] == ["skipped", "ran", "ran"]


def test_dry_run_runs_nothing(tmp_path: Path) -> None:
    rec = Recorder()
    results = StageRunner(tmp_path, pipeline(rec)).run(dry_run=True)
    assert [r.status for r in results] == ["planned"] * 3 and rec.calls == []


def test_bad_stage_lists_are_one_line_errors(tmp_path: Path) -> None:
    rec = Recorder()
    with pytest.raises(VLForgeError, match="unknown stage 'z'"):
        StageRunner(tmp_path, pipeline(rec)).run(only="z")
    with pytest.raises(VLForgeError, match="runs after 'c'"):
        StageRunner(tmp_path, [Stage("a", rec.body("a"), after=("c",)), Stage("c", rec.body("c"))])
    with pytest.raises(VLForgeError, match="needs stage 'a'"):
        StageRunner(tmp_path / "fresh", pipeline(rec)).run(only="b")
