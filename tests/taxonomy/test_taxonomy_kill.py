"""`valuescope taxonomy` killed with SIGKILL at several moments: every output file is either the
old complete one or a new complete one, and a rerun completes with the same result."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers.features import make_rows, to_table

OUTPUTS = ["values_tree.csv", "taxonomy.json", "features_clustered.parquet"]


def cmd(features: Path, out: Path) -> list[str]:
    opts = ["--min-conversations", "3", "--min-users", "2", "--levels", "4,2", "--seed", "1"]
    return [
        sys.executable,
        "-m",
        "valuescope.cli",
        "taxonomy",
        str(features),
        "--out",
        str(out),
        *opts,
    ]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("taxkill")
    features = tmp / "features.parquet"
    pq.write_table(to_table(make_rows(20_000, seed=8)), features, row_group_size=2_000)
    env = dict(os.environ, VALUESCOPE_CACHE_DIR=str(tmp / "cache"))
    reference = tmp / "reference"
    p = subprocess.run(cmd(features, reference), env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return features, reference, env


@pytest.mark.parametrize("delay", [0.5, 1.5, 3.0])
def test_killed_taxonomy_leaves_complete_files(setup, tmp_path, delay):
    features, reference, env = setup
    out = tmp_path / "out"
    shutil.copytree(reference, out)  # the "old complete files"
    proc = subprocess.Popen(cmd(features, out), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for name in OUTPUTS:
        # the same seed and input: old and new complete files are byte-identical
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
    p = subprocess.run(cmd(features, out), env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    for name in OUTPUTS:
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name
