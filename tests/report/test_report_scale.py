"""The report at deployment scale: an analysis shaped like a 10M-conversation run gives a report
under 10 MB whose long tails are capped, not listed. Its time and memory are measured in
benches/report_scale.py, not asserted here."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.large_analysis import N_AI, make_large_analysis
from valuescope.report import write_report


@pytest.fixture(scope="module")
def large(tmp_path_factory) -> Path:
    return make_large_analysis(tmp_path_factory.mktemp("large"))


def test_large_analysis_report_is_small_and_caps_the_tails(large: Path):
    html_path, md_path = write_report(large)
    assert html_path.stat().st_size < 10_000_000 and md_path.stat().st_size < 10_000_000
    html = html_path.read_text()
    assert "ai value 0" in html and "task cluster" in html
    assert f"ai value {N_AI - 1}" not in html  # the tail is capped, not listed
