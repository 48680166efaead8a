"""atomic_folder: an output folder appears complete or not at all under its name; it replaces an earlier output,
never an input (or a folder holding one) and never a folder with files the new output does not write."""

from __future__ import annotations

import pytest

from vlforge.common.atomic_file import atomic_folder
from vlforge.common.errors import VLForgeError


def _export(out, **files: str) -> None:
    with atomic_folder(out) as tmp:
        assert tmp.parent == out.parent and not (tmp / "a.json").exists()
        for name, text in files.items():
            (tmp / name).write_text(text)


def test_a_folder_appears_whole_and_a_second_export_replaces_it(tmp_path):
    out = tmp_path / "export"
    _export(out, **{"a.json": "1", "b.bin": "x"})
    _export(out, **{"a.json": "2", "b.bin": "y", "c.txt": "new"})
    assert {p.name: p.read_text() for p in out.iterdir()} == {"a.json": "2", "b.bin": "y", "c.txt": "new"}
    assert [p.name for p in tmp_path.iterdir()] == ["export"]  # no temporary or old folder left beside it


def test_a_failure_midway_leaves_the_earlier_folder_intact(tmp_path):
    out = tmp_path / "export"
    _export(out, **{"a.json": "1"})
    with pytest.raises(RuntimeError, match="midway"):
        with atomic_folder(out) as tmp:
            (tmp / "a.json").write_text("half")
            raise RuntimeError("failed midway")
    assert (out / "a.json").read_text() == "1" and [p.name for p in tmp_path.iterdir()] == ["export"]


def test_an_input_and_a_folder_of_other_files_are_never_replaced(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    checkpoint = run / "checkpoints" / "last.ckpt"
    checkpoint.write_bytes(b"weights")
    store = tmp_path / "store"
    store.mkdir()
    for out, message in ((run, "holds the input"), (run / "checkpoints", "holds the input"),
                         (checkpoint, "would overwrite the input"), (store / "export", "would overwrite the input")):
        with pytest.raises(VLForgeError, match=message):
            with atomic_folder(out, [checkpoint, store]):
                pytest.fail("never reached")
    home = tmp_path / "home"
    home.mkdir()
    (home / "notes.txt").write_text("mine")
    with pytest.raises(VLForgeError, match="holds notes.txt, which this export does not write"):
        _export(home, **{"a.json": "1"})
    assert [p.name for p in home.iterdir()] == ["notes.txt"] and checkpoint.read_bytes() == b"weights"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home", "run", "store"]
