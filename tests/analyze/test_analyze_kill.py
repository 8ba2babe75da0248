"""`valuescope analyze` killed with SIGKILL at several moments: every output file is either the
old complete one or a new complete one, and a rerun completes with the same bytes."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers.features import make_rows, to_table


def cmd(features: Path, out: Path) -> list[str]:
    opts = ["--min-conversations", "3", "--min-users", "2", "--batch-size", "500", "-q"]
    return [
        sys.executable,
        "-m",
        "valuescope.cli",
        "analyze",
        str(features),
        "--out",
        str(out),
        *opts,
    ]


def outputs(d: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(d)): p.read_bytes()
        for p in d.rglob("*")
        if p.is_file() and not p.name.startswith(".")  # temporary files are dot-files
    }


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("anakill")
    features = tmp / "features"
    features.mkdir()
    for k in range(4):
        pq.write_table(to_table(make_rows(30_000, seed=20 + k)), features / f"part-{k}.parquet")
    reference = tmp / "reference"
    p = subprocess.run(cmd(features, reference), capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return features, reference


@pytest.mark.parametrize("delay", [0.3, 0.8, 1.5])
def test_killed_analyze_leaves_complete_files(setup, tmp_path, delay):
    features, reference = setup
    want = outputs(reference)
    assert len(want) > 15
    out = tmp_path / "out"
    shutil.copytree(reference, out)  # the old complete files
    proc = subprocess.Popen(cmd(features, out), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # same input and settings: old and new complete files are byte-identical
    assert outputs(out) == want
    p = subprocess.run(cmd(features, out), capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert outputs(out) == want
