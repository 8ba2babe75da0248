"""`analyze --jobs N`: row-group units on a process pool, states merged, the same files as one
pass (rejects.csv included, with file and row). Also the directory comparison other scale-out
tests use."""

from __future__ import annotations

import csv

import pyarrow.parquet as pq
from helpers.analysis import REL, SMALL, assert_same_dir, run_cli
from helpers.features import assert_same_result, make_rows, to_table
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from valuescope import Engine
from valuescope.analyze import AnalyzeOptions, analyze_files
from valuescope.analyze.units import combine, plan_units, run_unit


def test_jobs_2_equals_one_pass(features, one_pass, tmp_path):
    out = tmp_path / "j2"
    rep = analyze_files(
        [features], out, AnalyzeOptions(**SMALL, batch_size=200, progress=False, jobs=2)
    )
    assert_same_dir(one_pass, out)
    # the comparison has something to compare: rejects from several files, by file and row
    rejects = list(csv.DictReader((out / "rejects.csv").open()))
    assert len({r["file"] for r in rejects}) == 3
    assert rep.summary["n_rejected"] == len(rejects) > 20
    assert (out / "rejects.csv").read_text() == (one_pass / "rejects.csv").read_text()


def test_cli_jobs_2_equals_one_pass(features, one_pass, tmp_path):
    out = tmp_path / "cli"
    p = run_cli(
        "analyze", str(features), "--out", str(out), "--min-conversations", "5",
        "--min-users", "3", "--batch-size", "200", "--jobs", "2", "-q",
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert_same_dir(one_pass, out)


def test_schema_error_in_a_worker_is_one_line(features, tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    for f in features.iterdir():
        (d / f.name).write_bytes(f.read_bytes())
    t = to_table(make_rows(300, seed=9)).drop_columns(["response_type"])
    pq.write_table(t, d / "part-9.parquet", row_group_size=100)
    p = run_cli("analyze", str(d), "--out", str(tmp_path / "o"), "-j", "2", "-q")
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "part-9.parquet" in lines[0] and "response_type" in lines[0]


def test_plan_covers_every_row_once(features):
    files = sorted(features.iterdir())
    for target in (None, 1, 500, 10**9):
        units = plan_units(files, target)
        assert [u.index for u in units] == list(range(len(units)))
        for f in files:
            mine = [u for u in units if u.path == str(f)]
            starts = [u.first_row for u in mine]
            assert starts[0] == 0
            pairs = zip(mine, mine[1:], strict=False)
            assert all(x.first_row + x.n_rows == y.first_row for x, y in pairs)
            assert sum(u.n_rows for u in mine) == pq.ParquetFile(f).metadata.num_rows


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    target=st.integers(1, 3000),
    order=st.randoms(use_true_random=False),
)
def test_units_merged_in_any_order_equal_one_pass(features, target, order):
    files = sorted(features.iterdir())
    opts = AnalyzeOptions(**SMALL, batch_size=97, progress=False)
    whole = Engine(**SMALL)
    for f in files:
        whole.update(pq.read_table(f))
    results = [run_unit(u, opts) for u in plan_units(files, target)]
    expected_rejects = sorted(r for res in results for r in res.rejects)
    order.shuffle(results)
    while len(results) > 1:  # a random tree of random fan-in
        i = order.randrange(len(results))
        k = order.randint(2, 4)
        results[i : i + k] = [combine(*results[i : i + k])]
    assert_same_result(whole.result(), Engine.from_bytes(results[0].state).result(), rel=REL)
    assert sorted(results[0].rejects) == expected_rejects


def test_default_jobs_pools_only_large_inputs(features, one_pass, tmp_path, monkeypatch):
    import valuescope.analyze.run as va

    used = []
    real = va.run_workers

    def spy(units, opts, jobs):
        used.append(jobs)
        return real(units, opts, jobs)

    monkeypatch.setattr(va, "run_workers", spy)
    monkeypatch.setattr(va, "default_jobs", lambda: 2)
    opts = AnalyzeOptions(**SMALL, batch_size=200, progress=False, jobs=None)
    analyze_files([features], tmp_path / "small", opts)
    assert used == []  # 4,000 rows: not worth starting processes
    monkeypatch.setattr(va, "POOL_MIN_ROWS", 1000)
    analyze_files([features], tmp_path / "large", opts)
    assert used == [2]
    assert_same_dir(one_pass, tmp_path / "large")


def test_a_killed_worker_stops_the_run(features, tmp_path):
    import multiprocessing
    import os
    import signal
    import threading

    from valuescope.errors import UserError

    killed = []

    def kill_first_worker() -> None:
        # as the out-of-memory killer would: SIGKILL, nothing sent back. (Only worker
        # processes are multiprocessing children; its resource tracker is not one.)
        for _ in range(2000):
            procs = multiprocessing.active_children()
            if procs and procs[0].pid:
                os.kill(procs[0].pid, signal.SIGKILL)
                killed.append(procs[0].pid)
                return
            threading.Event().wait(0.005)

    t = threading.Thread(target=kill_first_worker)
    t.start()
    opts = AnalyzeOptions(**SMALL, batch_size=200, progress=False, jobs=2)
    errors: list[BaseException] = []

    def analyze() -> None:
        try:
            analyze_files([features], tmp_path / "out", opts)
        except BaseException as exc:
            errors.append(exc)

    run = threading.Thread(target=analyze, daemon=True)  # a hang fails the test, not the suite
    run.start()
    run.join(timeout=120)
    t.join()
    assert killed and not run.is_alive(), "the parent kept waiting for a dead worker"
    assert len(errors) == 1 and isinstance(errors[0], UserError), errors
    assert "worker process died" in str(errors[0])
    assert not (tmp_path / "out" / "summary.json").exists()
