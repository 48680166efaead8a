"""Progress of long jobs in a log file: the status line's format, its interval, and the store tools that write it."""

from __future__ import annotations

import io
import json
import re

import pytest

from vlforge.common.progress import Progress, format_duration, is_status_line, status_line, track
from vlforge.common.store_cli import main as store_main

LINE = re.compile(r"^(?P<desc>[^:]+): (?P<done>\d+)(/(?P<total>\d+) (?P<unit>\S+) \((?P<pct>[\d.]+) %\))?.*"
                  r", (?P<rate>[\d.]+) \S+/s, elapsed .+$")


def test_status_line_states_done_total_rate_and_eta():
    line = status_line("ingest", 1200, 5000, 20.0, "images")
    assert line == "ingest: 1200/5000 images (24.0 %), 60.0 images/s, elapsed 20 s, ETA 1 min 03 s"
    assert is_status_line(line)
    assert status_line("ingest", 30, None, 3.0, "records") == "ingest: 30 records, 10.0 records/s, elapsed 3 s"
    # a resumed fit: the rate and the ETA count the steps of this process only (100 -> 160 in 30 s)
    resumed = status_line("fit", 160, 400, 30.0, "steps", started_at=100)
    assert resumed == "fit: 160/400 steps (40.0 %), 2.0 steps/s, elapsed 30 s, ETA 2 min 00 s"
    assert not is_status_line("fit done: 3 steps, 1 epochs in 2 s")
    assert [format_duration(s) for s in (5, 65, 3725)] == ["5 s", "1 min 05 s", "1 h 02 min"]


def test_non_terminal_progress_writes_a_line_per_interval_and_one_at_the_end():
    stream = io.StringIO()  # not a terminal: no bar
    with Progress("export", total=4, unit="records", interval=0.0, stream=stream, enabled=True) as progress:
        for _ in range(4):
            progress.update()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 5 and all(is_status_line(line) for line in lines)
    assert lines[-1].startswith("export: 4/4 records (100.0 %)")
    assert [int(LINE.match(line)["done"]) for line in lines] == [1, 2, 3, 4, 4]

    quiet = io.StringIO()
    assert list(track(range(3), "count", interval=3600.0, stream=quiet, enabled=True)) == [0, 1, 2]
    assert quiet.getvalue().splitlines() == [quiet.getvalue().splitlines()[0]]
    assert quiet.getvalue().startswith("count: 3/3 items (100.0 %)")

    failed = io.StringIO()  # a job that fails ends with its error, not with a status line
    with pytest.raises(ValueError), Progress("x", total=2, stream=failed, interval=3600.0, enabled=True):
        raise ValueError("bad record")
    assert failed.getvalue() == ""

    silent = io.StringIO()
    with Progress("x", total=2, stream=silent, interval=0.0, enabled=False) as progress:
        progress.update(2)
    assert silent.getvalue() == ""


def test_advance_to_is_a_done_total_callback():
    stream = io.StringIO()
    with Progress("queries", unit="queries", interval=0.0, stream=stream, enabled=True) as progress:
        for done in (2, 5):  # as generation calls `progress(done, total)` after each batch
            progress.advance_to(done, 5)
    lines = stream.getvalue().splitlines()
    assert [LINE.match(line)["done"] for line in lines] == ["2", "5", "5"]
    assert lines[0].startswith("queries: 2/5 queries (40.0 %), ") and progress.total == 5


def _status_lines(text: str) -> list[re.Match]:
    return [LINE.match(line) for line in text.splitlines() if is_status_line(line)]


def test_store_tools_report_progress_in_a_log(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("VLFORGE_PROGRESS_INTERVAL", "0")
    monkeypatch.delenv("VLFORGE_PROGRESS", raising=False)
    store = tmp_path / "shapes"
    assert store_main(["shapes", str(store), "--num-images", "12", "--seed", "0", "--workers", "1"]) == 0
    shapes = [m for m in _status_lines(capsys.readouterr().err) if m["desc"] == "shapes"]
    assert shapes and shapes[-1]["done"] == "12" and shapes[-1]["total"] == "12" and shapes[-1]["unit"] == "images"

    assert store_main(["export", str(store), "--format", "jsonl", "--out", str(tmp_path / "out.jsonl")]) == 0
    export = [m for m in _status_lines(capsys.readouterr().err) if m["desc"] == "export"]
    assert [int(m["done"]) for m in export] == [*range(1, 13), 12] and export[-1]["pct"] == "100.0"

    assert store_main(["verify", str(store)]) == 0
    verify = [m for m in _status_lines(capsys.readouterr().err) if m["desc"] == "verify"]
    assert verify[-1]["done"] == "12" and verify[-1]["total"] == "12"

    assert store_main(["merge", str(tmp_path / "merged"), str(store)]) == 0
    merge = [m for m in _status_lines(capsys.readouterr().err) if m["desc"].startswith("merge ")]
    assert merge[-1]["done"] == "12"

    jsonl = tmp_path / "captions.jsonl"
    jsonl.write_text("".join(json.dumps({"image": "missing.png", "caption": f"c{i}"}) + "\n" for i in range(3)))
    store_main(["ingest", str(tmp_path / "ingested"), "--format", "jsonl", "--annotations", str(jsonl)])
    ingest = [m for m in _status_lines(capsys.readouterr().err) if m["desc"] == "ingest"]
    assert ingest and ingest[-1]["done"] == "3"  # every record read is counted, the skipped ones too


@pytest.mark.parametrize("value", ["off", "0"])
def test_progress_can_be_silenced(value, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("VLFORGE_PROGRESS", value)
    monkeypatch.setenv("VLFORGE_PROGRESS_INTERVAL", "0")
    assert store_main(["shapes", str(tmp_path / "s"), "--num-images", "4", "--seed", "0", "--workers", "1"]) == 0
    assert not _status_lines(capsys.readouterr().err)
