"""The report stage: report.html and report.md from a real analysis directory, built through the
engine from rows that plant a value below the privacy thresholds and values that must be escaped."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.report import build_analysis


@pytest.fixture(scope="module")
def analysis(tmp_path_factory) -> Path:
    return build_analysis(tmp_path_factory.mktemp("report"))
