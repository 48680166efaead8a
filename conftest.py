"""Suite-wide: the slow tests are handed out first, so that the README's two-worker run (pytest-xdist,
``--dist load --maxschedchunk 1``) spreads them over both workers instead of ending on one long test."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)  # stable: collection order otherwise
