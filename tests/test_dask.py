"""valuescope on a real dask.distributed LocalCluster (two worker processes): every output file
the same as one pass."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_parallel import SMALL, assert_same_dir, run_cli, write_features
from valuescope.analyze import AnalyzeOptions, analyze_files
from valuescope.errors import UserError

distributed = pytest.importorskip("distributed")
dd = pytest.importorskip("dask.dataframe")
vdask = pytest.importorskip("valuescope.dask")


@pytest.fixture(scope="module")
def features(tmp_path_factory) -> Path:
    return write_features(tmp_path_factory.mktemp("dask") / "features")


@pytest.fixture(scope="module")
def one_pass(features, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dask") / "one"
    analyze_files([features], out, AnalyzeOptions(**SMALL, batch_size=200, progress=False))
    return out


@pytest.fixture(scope="module")
def client():
    with vdask.local_cluster(2, silence_logs=40) as cluster, distributed.Client(cluster) as c:
        assert len(c.scheduler_info()["workers"]) == 2
        yield c


def test_local_cluster_equals_one_pass(features, one_pass, client, tmp_path):
    out = tmp_path / "dask"
    with distributed.get_task_stream(client=client) as ts:
        rep = vdask.analyze([features], out=out, client=client, batch_size=200, **SMALL)
    assert_same_dir(one_pass, out)
    # the work really was spread: units ran on both workers, and were merged
    units = [t for t in ts.data if t["key"].startswith("run_unit")]
    assert len(units) > 2 and len({t["worker"] for t in units}) == 2
    assert any(t["key"].startswith("combine") for t in ts.data)
    assert rep.summary["n_rejected"] > 0


def test_fan_in_two_and_smaller_units(features, one_pass, client, tmp_path):
    out = tmp_path / "dask"
    vdask.analyze(str(features), out=out, client=client, batch_size=100, fan_in=2, **SMALL)
    assert_same_dir(one_pass, out)


def test_dask_dataframe_partitions(features, one_pass, client, tmp_path):
    ddf = dd.read_parquet(str(features)).repartition(npartitions=5)
    out = tmp_path / "ddf"
    vdask.analyze(ddf, out=out, client=client, **SMALL)
    # rejects name the partition, not the file; every figure is the same
    assert_same_dir(one_pass, out, skip=frozenset({"rejects.csv", "summary.json"}))
    s1 = json.loads((one_pass / "summary.json").read_text())
    s2 = json.loads((out / "summary.json").read_text())
    for k in ("inputs",):
        s1.pop(k), s2.pop(k)
    assert s1 == s2
    n1 = (one_pass / "rejects.csv").read_text().count("\n")
    assert (out / "rejects.csv").read_text().count("\n") == n1


def test_cli_dask_local(features, one_pass, tmp_path):
    out = tmp_path / "cli"
    p = run_cli(
        "analyze", str(features), "--out", str(out), "--min-conversations", "5",
        "--min-users", "3", "--batch-size", "200", "--dask", "local:2", "-q",
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    assert_same_dir(one_pass, out)


@pytest.mark.parametrize(
    ("address", "words"),
    [("local:zero", "local:N"), ("tcp://127.0.0.1:9", "cannot reach the scheduler")],
)
def test_bad_address_is_one_line(features, tmp_path, monkeypatch, address, words):
    monkeypatch.setenv("DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT", "1s")
    p = run_cli("analyze", str(features), "--out", str(tmp_path / "o"), "--dask", address, "-q")
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], p.stderr


def test_unknown_engine_option(features, client, tmp_path):
    with pytest.raises(UserError, match="min_user"):
        vdask.analyze([features], out=tmp_path / "o", client=client, min_user=3)
