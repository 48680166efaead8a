"""vlforge.captioner.patch_tower and `vlforge-captioner pretrain-tower`: per-patch labels against a direct geometric
computation, centre-patch accuracy against a direct count, and a real (3-step) pre-training whose preset builds a
LLaVA holding exactly the saved tower."""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from vlforge.captioner.cli import TOOLS
from vlforge.captioner.patch_tower import centre_accuracy, patch_labels
from vlforge.common.console import console
from vlforge.common.presets import build_preset
from vlforge.common.progress import is_status_line
from vlforge.common.shapes.build import build_shapes_store
from vlforge.common.shapes.vocabulary import COLOURS, SHAPES

GRAPH = {"objects": [{"x": 20, "y": 20, "radius": 12, "colour": "red", "shape": "circle"},
                     {"x": 44, "y": 20, "radius": 6, "colour": "blue", "shape": "star"}]}


def test_patch_labels_follow_the_objects_and_draw_small_ones_on_top() -> None:
    grid, patch = 8, 8
    colour, shape, centres = patch_labels(GRAPH, grid, patch)
    expected_colour = torch.zeros(grid * grid, dtype=torch.long)
    expected_shape = torch.zeros(grid * grid, dtype=torch.long)
    for obj in sorted(GRAPH["objects"], key=lambda o: -o["radius"]):  # large first, small on top
        for row in range(grid):
            for col in range(grid):
                cx, cy = col * patch + patch // 2, row * patch + patch // 2
                if (cx - obj["x"]) ** 2 + (cy - obj["y"]) ** 2 <= (0.8 * obj["radius"]) ** 2:
                    expected_colour[row * grid + col] = COLOURS.index(obj["colour"]) + 1
                    expected_shape[row * grid + col] = SHAPES.index(obj["shape"]) + 1
    assert torch.equal(colour, expected_colour) and torch.equal(shape, expected_shape)
    assert (colour > 0).sum() > 1 and (colour == 0).sum() > 40  # objects and background both present
    red, blue = COLOURS.index("red") + 1, COLOURS.index("blue") + 1
    assert sorted(centres) == sorted([(2 * grid + 2, red, SHAPES.index("circle") + 1),
                                      (2 * grid + 5, blue, SHAPES.index("star") + 1)])


def test_centre_accuracy_counts_colour_shape_and_both() -> None:
    classes = len(COLOURS) + 1 + len(SHAPES) + 1
    logits = torch.zeros(2, 4, classes)
    # image 0: patch 1 says colour 3 / shape 2; image 1: patch 2 says colour 1 / shape 5
    logits[0, 1, 3], logits[0, 1, len(COLOURS) + 1 + 2] = 1, 1
    logits[1, 2, 1], logits[1, 2, len(COLOURS) + 1 + 5] = 1, 1
    centres = [[(1, 3, 2), (1, 3, 4)], [(2, 2, 5)]]  # hits: colour 2 of 3, shape 2 of 3, both 1 of 3
    assert centre_accuracy(logits, centres) == {"colour": round(200 / 3, 1), "shape": round(200 / 3, 1),
                                                "both": round(100 / 3, 1)}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("tower") / "store"
    build_shapes_store(path, 24, seed=3, workers=1, split_fractions={"seed": 0.7, "val": 0.3})
    return str(path)


def test_pretrain_tower_writes_a_tower_and_a_preset_built_on_it(store, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("VLFORGE_PROGRESS_INTERVAL", "0")  # a status line per step, as in a log file
    monkeypatch.delenv("VLFORGE_PROGRESS", raising=False)
    out = tmp_path / "tower_run"
    assert console("captioner", TOOLS, ["pretrain-tower", "--store", store, "--out", str(out), "--steps", "3",
                                        "--batch-size", "4", "--eval-every", "2", "--seed", "5"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out.strip().splitlines()[-1])["last"]["step"] == 3
    status = [line for line in captured.err.splitlines() if is_status_line(line)]
    assert [line.split()[1] for line in status] == ["1/3", "2/3", "3/3", "3/3"] and "ETA" in status[0]
    assert status[0].startswith("pretrain-tower: 1/3 steps (33.3 %), ")
    probe = json.loads((out / "probe.json").read_text())
    assert [row["step"] for row in probe["curve"]] == [2, 3] and probe["eval_split"] == "val"
    assert probe["train_images"] + probe["eval_images"] == 24
    preset = yaml.safe_load((out / "preset.yaml").read_text())
    assert preset["seed"] == 5 and preset["model"]["vision_from"] == str((out / "tower").resolve())
    model, _ = build_preset(str(out / "preset.yaml"))
    from transformers import CLIPVisionModel

    saved = CLIPVisionModel.from_pretrained(out / "tower").state_dict()
    built = model.model.vision_tower.state_dict()
    assert set(saved) == set(built) and all(torch.equal(saved[k], built[k]) for k in saved)


def test_pretrain_tower_mistakes_are_one_line(store, tmp_path, capsys) -> None:
    assert console("captioner", TOOLS, ["pretrain-tower", "--store", store, "--out", str(tmp_path),
                                        "--eval-split", "test"]) == 2
    err = capsys.readouterr().err.strip()
    assert "split 'test'" in err and len(err.splitlines()) == 1
