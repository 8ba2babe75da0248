"""The analyze stage: one process, a pool, checkpoints, Dask, the CLI. The scale-out tests compare
each mode's analysis directory with one pass over the same sharded features."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.analysis import SMALL, write_features
from valuescope.analyze import AnalyzeOptions, analyze_files


@pytest.fixture(scope="module")
def features(tmp_path_factory) -> Path:
    """Three Parquet files with uneven row groups and schema-breaking rows in each."""
    return write_features(tmp_path_factory.mktemp("features") / "features")


@pytest.fixture(scope="module")
def one_pass(features, tmp_path_factory) -> Path:
    """The analysis of `features` in one plain pass: what every other mode must write."""
    out = tmp_path_factory.mktemp("one") / "one"
    analyze_files([features], out, AnalyzeOptions(**SMALL, batch_size=200, progress=False))
    return out
