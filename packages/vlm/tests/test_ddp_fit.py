"""Real 2-process Lightning DDP fits (the shipped `common:trainer/ddp_cpu_2.yaml`, gloo) of ContrastiveLitModule
and BlipLitModule with the shipped model presets, through the `vlforge-vlm` console, against a single-process fit
of the same global batches: the logged losses and the weights after each step agree.

Batches (rank_batches.RankBatches, a real LMDB store, the shipped ContrastivePairs / collate_pairs): rank 0 holds
pairs with hard negatives at every step; rank 1's first batch is entirely undecodable images (skipped, counted,
zero rows) and its second batch has pairs but no hard negatives.

BLIP is compared with the shipped preset's ITM and LM weighted 0 (ITC, gathered across ranks, is then the whole
loss); with all three objectives on, ITM samples hard negatives from the global RNG, so only the completed fit, the
finite objectives and the ITC loss are compared."""

from __future__ import annotations

import csv
import io
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vlforge.common.cli import run_cli
from vlforge.common.records import Caption, ImageRecord
from vlforge.common.store import CaptionStore

HERE = Path(__file__).parent
SHAPES = ["circle", "square", "star", "diamond", "triangle", "cross", "heart"]


def _png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _record(split: str, i: int, *, decodable: bool = True, with_negatives: bool = True) -> ImageRecord:
    shape = SHAPES[i % len(SHAPES)]
    captions = [Caption(f"a {['red', 'blue', 'green'][i % 3]} {shape} number {i}", "gt", "short")]
    if with_negatives:
        captions += [Caption(f"a purple {shape} number {i}", "gt", "negative"),
                     Caption(f"a yellow {SHAPES[(i + 1) % len(SHAPES)]} number {i}", "gt", "negative")]
    return ImageRecord(f"{split}-{i}", split, 32, 32, captions,
                       image_bytes=_png(i) if decodable else b"not an image at all")


@pytest.fixture(scope="module")
def rank_store(tmp_path_factory) -> str:
    """Splits: a0 / b0 rank 0's steps (with negatives); a1 rank 1's first step (undecodable), b1 its second
    (decodable, no negatives)."""
    path = tmp_path_factory.mktemp("ranks") / "store"
    store = CaptionStore.create(path)
    store.put_records([_record("a0", i) for i in range(3)] + [_record("a1", 10 + i, decodable=False) for i in range(2)]
                      + [_record("b0", 20 + i) for i in range(2)]
                      + [_record("b1", 30 + i, with_negatives=False) for i in range(2)])
    store.close()
    return str(path)


def _args(model: str, store: str, steps: str, max_steps: int, root: Path, *extra: str) -> list[str]:
    return ["fit", "--config", f"vlm:model/{model}.yaml", *extra,
            "--data.class_path", "rank_batches.RankBatches", "--data.init_args.store", store,
            "--data.init_args.steps", steps, "--trainer.max_steps", str(max_steps),
            "--trainer.use_distributed_sampler", "false", "--trainer.log_every_n_steps", "1",
            "--trainer.limit_val_batches", "0", "--trainer.enable_progress_bar", "false",
            "--trainer.enable_model_summary", "false", "--seed_everything", "0", "--run_root", str(root)]


def _fits(tmp_path: Path, model: str, store: str, steps: str, max_steps: int, extra: tuple = (),
          ddp_extra: tuple = ()) -> tuple[dict, dict]:
    """(DDP run, single-process run): each its last checkpoint's state dict and per-step logged metrics."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])))
    # Lightning re-launches this command line for rank 1, so the DDP fit runs the console module in a subprocess
    ddp = subprocess.run([sys.executable, "-m", "vlforge.vlm.cli",
                          *_args(model, store, steps, max_steps, tmp_path / "ddp", *extra,
                                 "--config", "common:trainer/ddp_cpu_2.yaml", *ddp_extra)],
                         env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    sys.path.insert(0, str(HERE))
    try:
        assert run_cli("vlm", _args(model, store, steps, max_steps, tmp_path / "single", *extra)) == 0
    finally:
        sys.path.remove(str(HERE))
    return tuple(_run(tmp_path / name) for name in ("ddp", "single"))


def _run(root: Path) -> dict:
    (version,) = root.glob("vlm/version_*")
    state = torch.load(version / "checkpoints" / "last.ckpt", weights_only=True)
    with open(version / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("train/loss")]
    return {"state": state, "metrics": {int(r["step"]): r for r in rows}}


def _key_bias(name: str, value: torch.Tensor) -> torch.Tensor | None:
    """The attention key bias inside a parameter, if any: it adds q . b_k to every score of a query, which the
    softmax ignores, so its gradient is zero in exact arithmetic and only rounding noise reaches it."""
    if name.endswith(("attn.in_proj_bias", "self_attn.qkv.bias")):  # open_clip / HF BLIP vision: [q; k; v]
        return value.chunk(3)[1]
    return value if name.endswith(".key.bias") else None


def _assert_same(ddp: dict, single: dict, keys: list[str], steps: int, learning_rates: list[float]) -> None:
    assert ddp["state"]["global_step"] == single["state"]["global_step"] == steps
    assert sorted(ddp["metrics"]) == sorted(single["metrics"]) == list(range(steps))
    for step in range(steps):
        for key in keys:
            assert float(ddp["metrics"][step][key]) == pytest.approx(float(single["metrics"][step][key]), rel=1e-4), \
                (step, key)
    assert float(single["metrics"][0]["train/skipped_undecodable_image"]) == 2.0  # rank 1's first batch, skipped
    weights, ddp_weights = single["state"]["state_dict"], ddp["state"]["state_dict"]
    assert set(ddp_weights) == set(weights)
    # AdamW's first steps move each weight by about lr whatever its gradient's size, so an entry whose gradient is
    # at rounding level (the ranks' sums run in another order) moves by a random fraction of lr in each run. The
    # attention key biases are all such entries; elsewhere at most 1 in 100,000 may be, and none moves further
    # than the summed learning rates. Everything else agrees to rtol 1e-4 / atol 1e-6.
    total, off, worst = 0, {}, 0.0
    for key, value in weights.items():
        got, value = ddp_weights[key].clone(), value.clone()
        worst = max(worst, (got - value).abs().max().item())
        noise = _key_bias(key, got)
        if noise is not None:
            noise.copy_(_key_bias(key, value))
        total += value.numel()
        mismatched = int((~torch.isclose(got, value, rtol=1e-4, atol=1e-6)).sum())
        if mismatched:
            off[key] = mismatched
    assert worst <= sum(learning_rates), worst
    assert sum(off.values()) <= total // 100_000, off


def _warmup_lrs(peak: float, warmup: int, steps: int) -> list[float]:
    return [peak * (step + 1) / warmup for step in range(steps)]  # the presets' linear warm-up


@pytest.mark.ddp
def test_clip_ddp_fit_with_an_empty_rank_then_a_rank_without_negatives_equals_one_process(tmp_path, rank_store):
    ddp, single = _fits(tmp_path, "clip_tiny", rank_store, "[[a0, a1], [b0, b1]]", 2)
    _assert_same(ddp, single, ["train/loss"], 2, _warmup_lrs(1e-3, 20, 2))


@pytest.mark.ddp
def test_blip_itc_ddp_fit_with_an_empty_rank_then_a_rank_without_negatives_equals_one_process(tmp_path, rank_store):
    """The shipped BLIP preset with ITM and LM weighted 0: ITC (gathered across ranks) is the whole loss. The
    decoder and ITM head then go unused, which DDP must be told (find_unused_parameters)."""
    weights = ("--model.init_args.itm_weight", "0", "--model.init_args.lm_weight", "0")
    ddp, single = _fits(tmp_path, "blip_tiny", rank_store, "[[a0, a1], [b0, b1]]", 2, extra=weights,
                        ddp_extra=("--trainer.strategy.init_args.find_unused_parameters", "true"))
    _assert_same(ddp, single, ["train/loss", "train/itc"], 2, _warmup_lrs(1e-3, 20, 2))


@pytest.mark.ddp
def test_blip_ddp_fit_with_all_three_objectives_survives_an_empty_rank(tmp_path, rank_store):
    """With ITM and LM on, the two runs cannot be equal: ITM samples its hard negatives from the global RNG, whose
    state differs between a rank and one process, and ITM / LM are per-rank means. Checked: the fit completes
    (no rank waits on another), every objective is finite on each step, and rank 0's ITC loss equals the one
    process's (ITC needs no sampling)."""
    ddp, single = _fits(tmp_path, "blip_tiny", rank_store, "[[a0, a1], [b0, b1]]", 1)
    row, reference = ddp["metrics"][0], single["metrics"][0]
    assert all(math.isfinite(float(row[f"train/{name}"])) for name in ("itc", "itm", "lm"))
    assert float(row["train/itc"]) == pytest.approx(float(reference["train/itc"]), rel=1e-4)
