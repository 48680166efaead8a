"""`fit --ckpt_path last` continues exactly: N steps + resume to 2N == 2N uninterrupted (weights, optimizer,
scheduler, data position, RNG via dropout, metrics.csv), at an epoch boundary and mid-epoch; the first config.yaml is
kept."""

from pathlib import Path

import pytest
import torch

from vlforge.common.cli import run_cli
from vlforge.common.rng_state import capture_rng_state, restore_rng_state

TOY_BASE = Path(__file__).parent / "toy" / "toy_base.yaml"


def _fit(root: Path, steps: int, *extra: str) -> None:
    # 64 samples / batch 8 = 8 batches per epoch; dropout 0.3 makes the result depend on the RNG state.
    assert (
        run_cli(
            "common",
            [
                "fit",
                "--config",
                str(TOY_BASE),
                "--run_root",
                str(root),
                "--trainer.max_steps",
                str(steps),
                "--model.init_args.net.init_args.dropout",
                "0.3",
                *extra,
            ],
        )
        == 0
    )


def _last(root: Path) -> dict:
    (path,) = root.glob("common/version_*/checkpoints/last.ckpt")
    return torch.load(path, weights_only=True)


@pytest.mark.parametrize("steps", [5, 8], ids=["mid_epoch", "epoch_end"])
def test_resume_matches_uninterrupted_run(tmp_path: Path, steps: int) -> None:
    _fit(tmp_path / "straight", 2 * steps)
    _fit(tmp_path / "resumed", steps)
    (metrics_csv,) = (tmp_path / "resumed").glob("common/version_*/metrics.csv")
    with metrics_csv.open("a", newline="") as f:  # rows a killed run logged after its checkpoint, the last one cut off
        f.write(f",0.5,{steps},,\r\n0,,{steps},99.0,\r\n,0.4,{steps + 1}")
    _fit(tmp_path / "resumed", 2 * steps, "--ckpt_path", "last")
    straight, resumed = _last(tmp_path / "straight"), _last(tmp_path / "resumed")
    assert resumed["global_step"] == straight["global_step"] == 2 * steps
    assert straight["state_dict"].keys() == resumed["state_dict"].keys()
    for key, value in straight["state_dict"].items():
        torch.testing.assert_close(resumed["state_dict"][key], value, rtol=0, atol=0, msg=key)
    adam_straight = straight["optimizer_states"][0]["state"]
    adam_resumed = resumed["optimizer_states"][0]["state"]
    for index, state in adam_straight.items():
        torch.testing.assert_close(adam_resumed[index]["exp_avg_sq"], state["exp_avg_sq"], rtol=0, atol=0)
    assert resumed["lr_schedulers"] == straight["lr_schedulers"]
    # metrics.csv holds every row once: the first run's rows are kept, those past its checkpoint logged again
    (straight_csv,) = (tmp_path / "straight").glob("common/version_*/metrics.csv")
    assert metrics_csv.read_text() == straight_csv.read_text()
    # the first run's config survives the resume; the resumed run's config is written beside it
    (version,) = (tmp_path / "resumed" / "common").glob("version_*")
    assert f"max_steps: {steps}\n" in (version / "config.yaml").read_text()
    assert f"max_steps: {2 * steps}\n" in (version / "config.resume1.yaml").read_text()


def test_rng_state_round_trip() -> None:
    import random

    import numpy as np

    state = capture_rng_state()
    first = (torch.rand(3), np.random.rand(3), random.random())
    torch.rand(5), np.random.rand(5), random.random()
    restore_rng_state(state)
    second = (torch.rand(3), np.random.rand(3), random.random())
    torch.testing.assert_close(first[0], second[0])
    assert np.array_equal(first[1], second[1]) and first[2] == second[2]
