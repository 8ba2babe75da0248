"""The engine through its bindings: counts, statistics, state, spill, k-means, Parquet reading."""

from __future__ import annotations

import pytest
from helpers.features import make_rows


@pytest.fixture
def rows() -> list[dict]:
    return make_rows(3000, seed=1, bad_rate=0.02)
