"""`valuescope demo`: the README's main job, end to end on a small corpus."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path


def test_demo_writes_everything_and_summarises(tmp_path: Path):
    out = tmp_path / "demo"
    p = subprocess.run(
        [sys.executable, "-m", "valuescope.cli", "demo", "--n", "30000", "--out", str(out), "-q"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.returncode == 0, p.stderr
    analysis = out / "analysis"
    for name in ["summary.json", "ai_values.csv", "report.html", "report.md",
                 "taxonomy/values_tree.csv", "taxonomy/reference_comparison.csv"]:  # fmt: skip
        assert (analysis / name).is_file(), name
    with (analysis / "ai_values.csv").open() as fh:
        top = next(csv.DictReader(fh))
    # the printed summary is read back from the published files
    assert top["value"] in p.stdout
    assert "30,000 conversations analysed" in p.stdout
    assert "Strongest value-task associations" in p.stdout
    assert str(analysis / "report.html") in p.stdout
