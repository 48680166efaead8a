"""The running reward mean δ: exact running mean, checkpoint round trip, identical on every DDP rank."""

import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from vlforge.captioner.reward_shift import RunningRewardMean
from vlforge.common.errors import VLForgeError


def test_running_mean_of_all_rewards_seen():
    tracker = RunningRewardMean()
    assert tracker.value == 0.0
    tracker.update(torch.tensor([1.0, 2.0]), torch.tensor([-3.0]))
    assert tracker.value == pytest.approx(0.0)
    tracker.update(torch.tensor([4.0, 5.0, 6.0]))
    assert tracker.value == pytest.approx((1 + 2 - 3 + 4 + 5 + 6) / 6)


def test_state_dict_round_trip_restores_delta():
    tracker = RunningRewardMean()
    tracker.update(torch.tensor([0.5, -1.5, 2.0]))
    restored = RunningRewardMean()
    restored.load_state_dict(tracker.state_dict())
    restored.update(torch.tensor([3.0]))
    assert restored.value == pytest.approx((0.5 - 1.5 + 2.0 + 3.0) / 4)
    with pytest.raises(VLForgeError, match="count"):
        RunningRewardMean().load_state_dict({"total": 1.0})


def _rank_worker(rank: int, world: int, port: int, results) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    tracker = RunningRewardMean()
    tracker.update(torch.tensor([float(rank)] * (rank + 1)))  # rank 0: [0], rank 1: [1, 1]
    results[rank] = tracker.value
    dist.destroy_process_group()


@pytest.mark.ddp
def test_all_ranks_hold_the_global_mean():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    results = mp.Manager().dict()
    mp.spawn(_rank_worker, args=(2, port, results), nprocs=2, join=True)
    assert results[0] == pytest.approx(2 / 3)
    assert results[1] == pytest.approx(2 / 3)
