"""The Lightning predict path of caption generation: `vlforge-captioner predict` with the shipped config, in
one process and as a real 2-process CPU DDP run (gloo) whose rank shard stores are merged into the main
store."""

import os
import shutil
import subprocess
import sys

import pytest

from vlforge.captioner.generation.run import generate_into_store
from vlforge.captioner.generation.spec import CaptionerSpec, GenerationConfig
from vlforge.captioner.generation.store_io import failures
from vlforge.common.cli import VLForgeCLI, run_cli
from vlforge.common.lm.shards import default_shard_root
from vlforge.common.records import ImageRecord
from vlforge.common.shapes.build import build_shapes_store
from vlforge.common.store import CaptionStore

CONFIG = "captioner:generation/predict_tiny.yaml"
NAME = "tiny_llava_dense"
SHORT = "--model.init_args.captioner.decoding.max_new_tokens=6"


@pytest.fixture(scope="module")
def base_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("predict") / "store"
    build_shapes_store(path, 14, seed=4, workers=1, split_fractions={"pool": 0.6, "seed": 0.4})
    with CaptionStore(path, readonly=False) as store:
        store.put_records([ImageRecord("aaa_corrupt", "pool", 64, 64, image_bytes=b"\x89PNG broken")])
    return path


@pytest.fixture
def store(base_store, tmp_path):
    path = tmp_path / "store"
    shutil.copytree(base_store, path)
    return str(path)


def _generated(store):
    with CaptionStore(store) as s:
        return {
            r.image_id: [c.text for c in r.captions_by(source=NAME)] for r in s.iter_records(split="pool")
        }


def _reference(store, tmp_path):
    """The same captioner through the single-process store run, on a copy of the store."""
    copy = tmp_path / "reference"
    shutil.copytree(store, copy)
    spec = CaptionerSpec(
        name=NAME,
        source="preset:llava_tiny",
        format="dense",
        decoding={"max_new_tokens": 6, "num_beams": 1, "do_sample": False},
    )
    generate_into_store(copy, GenerationConfig([spec], split="pool"))
    return _generated(copy)


def test_shipped_predict_config_instantiates(store):
    cli = VLForgeCLI("captioner", ["--config", CONFIG, "--data.init_args.store", store], run=False)
    assert cli.model.spec.name == NAME and cli.datamodule.split == "pool"


def test_single_process_predict_fills_the_store_and_resumes(store, tmp_path):
    args = [
        "predict",
        "--config",
        CONFIG,
        "--data.init_args.store",
        store,
        "--run_root",
        str(tmp_path / "runs"),
        "--data.init_args.limit",
        "4",
        SHORT,
        "--trainer.enable_progress_bar=false",
    ]
    assert run_cli("captioner", args) == 0
    first = _generated(store)
    assert sum(len(t) for t in first.values()) == 3  # aaa_corrupt is among the first 4 ids and fails
    assert run_cli("captioner", args[:7] + args[9:]) == 0  # no limit: the rest of the split
    after = _generated(store)
    assert all(len(t) == 1 for i, t in after.items() if i != "aaa_corrupt") and after["aaa_corrupt"] == []
    assert all(after[i] == t for i, t in first.items() if t)
    assert after == _reference(store, tmp_path)
    with CaptionStore(store) as s:
        assert list(failures(s, NAME)) == ["aaa_corrupt"]
    assert not default_shard_root(store).exists()


@pytest.mark.ddp
def test_two_process_ddp_predict_shards_the_split_and_merges(store, tmp_path):
    # Lightning re-launches this command line for rank 1, so the run goes through the console module.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "vlforge.captioner.cli",
            "predict",
            "--config",
            CONFIG,
            "--config",
            "common:trainer/ddp_cpu_2.yaml",
            "--data.init_args.store",
            store,
            "--data.init_args.batch_size",
            "2",
            "--run_root",
            str(tmp_path / "runs"),
            SHORT,
            "--trainer.enable_progress_bar=false",
        ],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "MEMBER: 2/2" in run.stdout + run.stderr
    generated = _generated(store)
    assert all(len(t) == 1 for i, t in generated.items() if i != "aaa_corrupt")
    assert generated == _reference(store, tmp_path)
    with CaptionStore(store) as s:
        assert list(failures(s, NAME)) == ["aaa_corrupt"]
        provenance = [c.provenance for r in s.iter_records(source=NAME) for c in r.captions_by(source=NAME)]
    assert {p["shear_tokens"] for p in provenance} == {provenance[0]["shear_tokens"]} and provenance[0][
        "shear_tokens"
    ]
    assert not default_shard_root(store).exists()
