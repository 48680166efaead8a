"""vlforge.common.distributed on a real one-process gloo group (the 2-process gathers are tested by the DDP fits)."""

from __future__ import annotations

import torch
import torch.distributed as dist

from vlforge.common.distributed import release_process_group, world


def test_release_process_group_destroys_an_initialised_group_and_is_a_no_op_without_one(tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    try:
        assert world() == (0, 1) and dist.is_initialized()
        tensor = torch.ones(2)
        dist.all_reduce(tensor)  # the group's gloo threads have run work
        release_process_group()
        assert not dist.is_initialized()
        release_process_group()  # nothing initialised: nothing to do, no error
        assert world() == (0, 1)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
