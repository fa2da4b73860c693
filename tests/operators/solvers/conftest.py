"""Solver tests run on small tensors, where extra intra-op threads only add contention."""
from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield
