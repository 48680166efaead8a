"""Shared fixtures: one torch thread, a small ShapesWorld store whose records sit in the splits the tests name."""

import pytest
import torch

from vlforge.common.shapes.build import make_record
from vlforge.common.shapes.config import ShapesWorldConfig
from vlforge.common.store import CaptionStore


@pytest.fixture(autouse=True)
def one_cpu_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_store(path, splits: dict[str, int], size: int = 64):
    """A ShapesWorld store at ``path`` with ``splits[name]`` records in each split (indices in order)."""
    config = ShapesWorldConfig(image_size=size)
    records, index = [], 0
    for split, count in splits.items():
        for _ in range(count):
            record = make_record(index, 0, config)
            record.split = split
            records.append(record)
            index += 1
    with CaptionStore.create(path) as store:
        store.put_records(records)
    return path


@pytest.fixture(scope="session")
def store_maker():
    """``make_store`` as a fixture (test modules are not importable by name)."""
    return make_store
