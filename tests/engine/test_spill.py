"""Tables spilled to disk under a memory limit give exactly the results of an in-memory pass."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers.features import make_rows, to_table
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from valuescope import Engine

LOW = {"min_conversations": 3, "min_users": 2}


def results_equal(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if k == "summary":
            assert a[k] == b[k]
        else:
            assert a[k].equals(b[k]), f"{k} differs"


def spill_dirs(base: Path) -> list[Path]:
    return sorted(base.glob("valuescope-spill-*"))


@pytest.fixture(scope="module")
def table():
    return to_table(make_rows(4000, seed=5, bad_rate=0.01))


def test_spilled_engine_equals_in_memory(table, tmp_path):
    mem, disk = Engine(**LOW), Engine(**LOW, memory_limit=4096, spill_dir=tmp_path)
    for b in table.to_batches(max_chunksize=300):
        mem.update(b)
        disk.update(b)
    written, spills = disk.spilled
    assert written > 0 and spills > 3
    assert disk.table_bytes <= 4096 < mem.table_bytes
    (d,) = spill_dirs(tmp_path)
    assert any(d.iterdir())
    results_equal(mem.result(), disk.result())
    # the value pairs' response mix lives in the spilled cells: it must come back with them
    pairs = disk.result()["value_pairs"]
    assert pairs.num_rows > 0 and pairs["dominant_response_type"].null_count < pairs.num_rows
    # pickling and merging bring the spilled cells along
    results_equal(mem.result(), pickle.loads(pickle.dumps(disk)).result())
    fresh = Engine(**LOW)
    fresh.merge(disk)
    results_equal(mem.result(), fresh.result())
    disk.merge(disk)
    mem.merge(mem)
    results_equal(mem.result(), disk.result())
    del disk
    assert spill_dirs(tmp_path) == []


def test_a_result_moves_spilled_tables_wholly_to_disk_and_counting_goes_on(table, tmp_path):
    """result() writes the in-memory cells of spilled tables out first (so that its own work
    reuses their memory): the figures, and everything counted after, stay those of one pass."""
    limit = 100_000  # some tables spilled, some cells still in memory
    mem, disk = Engine(**LOW), Engine(**LOW, memory_limit=limit, spill_dir=tmp_path)
    batches = table.to_batches(max_chunksize=300)
    for b in batches[: len(batches) // 2]:
        mem.update(b)
        disk.update(b)
    assert disk.spilled[0] > 0 and disk.table_bytes > 0
    before = disk.spilled[0]
    results_equal(mem.result(), disk.result())
    assert disk.spilled[0] > before  # the rest of the spilled tables went out too
    results_equal(mem.result(), disk.result())  # twice: nothing lost or counted twice
    for b in batches[len(batches) // 2 :]:
        mem.update(b)
        disk.update(b)
    results_equal(mem.result(), disk.result())


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    cuts=st.lists(st.integers(1, 3999), max_size=6, unique=True),
    limits=st.lists(st.sampled_from([None, 1, 2000, 30_000]), min_size=7, max_size=7),
    order=st.randoms(use_true_random=False),
)
def test_any_sharding_with_any_limits_equals_one_pass(table, tmp_path, cuts, limits, order):
    one = Engine(**LOW)
    one.update(table)
    bounds = [0, *sorted(cuts), table.num_rows]
    shards = []
    for (lo, hi), limit in zip(zip(bounds, bounds[1:], strict=False), limits, strict=False):
        e = Engine(**LOW, memory_limit=limit, spill_dir=tmp_path if limit else None)
        for b in table.slice(lo, hi - lo).to_batches(max_chunksize=250):
            e.update(b)
        shards.append(e)
    order.shuffle(shards)
    acc = Engine(**LOW, memory_limit=limits[-1], spill_dir=tmp_path if limits[-1] else None)
    for e in shards:
        acc.merge(e)
    results_equal(one.result(), acc.result())


def test_spill_dir_needs_a_limit(tmp_path):
    with pytest.raises(ValueError, match="memory_limit"):
        Engine(spill_dir=tmp_path)
    with pytest.raises(OSError, match="spill"):
        Engine(memory_limit=10, spill_dir=tmp_path / "missing")


def run_analyze(src: Path, out: Path, tmp: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TMPDIR": str(tmp)}
    cmd = [sys.executable, "-m", "valuescope.cli", "analyze", str(src), "--out", str(out)]
    cmd += ["--min-conversations", "3", "--min-users", "2", "--batch-size", "200", "-q", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, env=env)


def test_cli_output_is_byte_identical_with_and_without_spilling(tmp_path, table):
    src = tmp_path / "f.parquet"
    pq.write_table(table, src, row_group_size=700)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    a = run_analyze(src, tmp_path / "a", tmp, "--memory-limit", "0")
    b = run_analyze(src, tmp_path / "b", tmp, "--memory-limit", "4KiB")
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    files = sorted(
        p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file()
    )
    assert len(files) > 10
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    assert spill_dirs(tmp) == [], "spill files must not outlive the run"


def test_bad_memory_limit_is_one_line(tmp_path, table):
    src = tmp_path / "f.parquet"
    pq.write_table(table.slice(0, 10), src)
    p = run_analyze(src, tmp_path / "o", tmp_path, "--memory-limit", "lots")
    assert p.returncode == 2
    assert "Traceback" not in p.stderr and "not a size" in p.stderr


def test_spill_dirs_of_killed_runs_are_removed(tmp_path, monkeypatch, table):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f"valuescope-spill-{dead.pid}-0"
    live = tmp_path / f"valuescope-spill-{os.getpid()}-7"
    other = tmp_path / "valuescope-spill-notes"
    for d in (stale, live, other):
        d.mkdir()
        (d / "t0-p0.cells").write_bytes(b"x")
    src = tmp_path / "f.parquet"
    pq.write_table(table.slice(0, 50), src)
    p = run_analyze(src, tmp_path / "o", tmp_path, "--memory-limit", "1MiB")
    assert p.returncode == 0, p.stderr
    assert not stale.exists()
    assert live.exists() and other.exists()


def test_a_spill_dir_removed_by_its_own_run_during_the_sweep_is_skipped(tmp_path, monkeypatch):
    # Runs on one machine sweep concurrently: the owner may delete its directory after the
    # sweep lists it and before the sweep reads its owner.
    from valuescope.analyze.options import remove_stale_spills

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    vanishing = tmp_path / f"valuescope-spill-{dead.pid}-1"
    stale = tmp_path / f"valuescope-spill-{dead.pid}-2"
    for d in (vanishing, stale):
        d.mkdir()
    real_stat = Path.stat
    looked = []

    def stat_after_removal(self, *a, **k):
        # The first look (is it a directory?) succeeds; the directory is gone by the next.
        if self == vanishing:
            looked.append(1)
            if len(looked) == 2:
                os.rmdir(self)
        return real_stat(self, *a, **k)

    monkeypatch.setattr(Path, "stat", stat_after_removal)
    assert remove_stale_spills(str(tmp_path)) == 1
    assert len(looked) == 2 and not stale.exists()
