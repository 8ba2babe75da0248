"""The console entry: it leaves with os._exit after a success, so what it printed must have
been flushed first, and a failure must still exit the normal way with its status."""

from __future__ import annotations

import re
import subprocess
import sys

import pyarrow.parquet as pq
from helpers.features import make_rows, to_table
from valuescope import __version__


def run(*args: str) -> subprocess.CompletedProcess:
    # `python -m valuescope` runs the same function as the `valuescope` script
    return subprocess.run(
        [sys.executable, "-m", "valuescope", *args], capture_output=True, text=True
    )


def test_piped_output_of_a_success_is_complete(tmp_path):
    src = tmp_path / "f.parquet"
    pq.write_table(to_table(make_rows(300, seed=5)), src)
    p = run("analyze", str(src), "--out", str(tmp_path / "o"), "-q")
    assert p.returncode == 0, p.stderr
    # block-buffered when piped: lost unless flushed before os._exit
    assert re.fullmatch(r"analysed \d+ conversations .*\n", p.stdout), p.stdout
    assert (tmp_path / "o" / "summary.json").is_file()
    v = run("--version")
    assert (v.returncode, v.stdout.strip()) == (0, f"valuescope, version {__version__}")
    h = run("analyze", "--help")
    assert h.returncode == 0 and "--memory-limit" in h.stdout


def test_failures_keep_their_status_and_message(tmp_path):
    p = run("analyze", str(tmp_path / "missing.parquet"), "--out", str(tmp_path / "o"))
    assert p.returncode == 2
    assert p.stderr.startswith("valuescope: error: ") and p.stderr.count("\n") == 1, p.stderr
    u = run("no-such-command")
    assert u.returncode == 2 and "No such command" in u.stderr
