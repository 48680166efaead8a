"""ShapesWorld into a real caption store: build_shapes_store and the `vlforge-store shapes` command."""

from __future__ import annotations

import json
import subprocess
import sys

from vlforge.common.shapes.build import build_shapes_store, make_record
from vlforge.common.shapes.config import ShapesWorldConfig
from vlforge.common.shapes.render import render_scene
from vlforge.common.store import CaptionStore
from vlforge.common.store_cli import main
from vlforge.common.text import mean_caption_tokens


def test_build_writes_records_that_round_trip_and_records_how_it_was_made(tmp_path):
    path = tmp_path / "shapes"
    counts = build_shapes_store(path, 40, seed=3, image_size=48, alt_mismatch_rate=0.5)
    assert counts["images"] == 40 and sum(counts["splits"].values()) == 40
    assert counts["by_source"]["alt_text"] == 40
    config = ShapesWorldConfig(image_size=48, alt_mismatch_rate=0.5)
    with CaptionStore(path) as store:
        made = store.info["shapesworld"]
        assert made["seed"] == 3 and made["num_images"] == 40 and made["generator"] == "shapesworld"
        assert made["knobs"] == config.to_dict()
        stored = store.get("shapes-s3-00000017")
        assert stored.to_dict() == make_record(17, 3, config).to_dict()
        expected = render_scene(stored.meta["scene_graph"])
        assert list(store.load_image(stored).getdata()) == list(expected.getdata())
    again = build_shapes_store(path, 40, seed=3, image_size=48, alt_mismatch_rate=0.5)
    assert again == counts, "re-running the same build adds nothing"


def test_mean_caption_tokens_of_a_shapes_store(tmp_path):
    path = tmp_path / "shapes"
    build_shapes_store(path, 30, seed=0)
    with CaptionStore(path) as store:
        records = list(store.iter_records())
    short = [len(c.text.split()) for r in records for c in r.captions_by("gt", "short")]
    assert mean_caption_tokens(path, "gt", kind="short") == sum(short) / len(short)
    pool = [len(c.text.split()) for r in records if r.split == "pool" for c in r.captions_by("alt_text")]
    assert mean_caption_tokens(path, "alt_text", split="pool") == sum(pool) / len(pool)


def test_shapes_command_builds_a_store(tmp_path, capsys):
    path = tmp_path / "cli"
    code = main(["shapes", str(path), "--num-images", "25", "--seed", "9", "--image-size", "40", "--json",
                 "--set", "sign_probability=1.0", "--set", 'split_fractions={"pool": 0.6, "test": 0.4}'])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["images"] == 25 and set(summary["splits"]) <= {"pool", "test"}
    with CaptionStore(path) as store:
        records = list(store.iter_records())
        assert store.info["shapesworld"]["knobs"]["sign_probability"] == 1.0
    assert len(records) == 25 and {(r.width, r.height) for r in records} == {(40, 40)}
    # a sign fits in about half of the 40 px scenes
    assert sum(r.meta["scene_graph"]["sign"] is not None for r in records) >= 8


def test_shapes_command_reports_bad_knobs_on_one_line(tmp_path):
    entry = "import sys; from vlforge.common.store_cli import main; sys.exit(main())"
    run = subprocess.run([sys.executable, "-c", entry, "shapes", str(tmp_path / "bad"),
                          "--num-images", "5", "--seed", "0", "--set", "alt_mismatch_rate=2"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and "alt_mismatch_rate" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "bad").exists(), "a rejected build creates no store"
