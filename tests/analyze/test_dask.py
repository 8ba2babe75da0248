"""valuescope on a real dask.distributed LocalCluster (two worker processes): every output file
the same as one pass."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers.analysis import SMALL, assert_same_dir, run_cli
from valuescope.analyze import AnalyzeOptions, analyze_files
from valuescope.errors import UserError

distributed = pytest.importorskip("distributed")
dd = pytest.importorskip("dask.dataframe")
vdask = pytest.importorskip("valuescope.analyze.on_dask")
vextract = pytest.importorskip("valuescope.extract.on_dask")


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


def test_cli_dask_bad_data_is_one_line_without_worker_logs(tmp_path):
    """A task's error reaches stderr once, as one line: not also as the worker's traceback."""
    bad = Path(__file__).parents[1] / "data" / "bad_inputs" / "features" / "latin1_task.parquet"
    p = run_cli("analyze", str(bad), "--out", str(tmp_path / "o"), "--dask", "local:1", "-q")
    assert p.returncode == 2, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0] and "'task'" in lines[0], p.stderr


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


def _conversations(path: Path, lo: int, hi: int) -> None:
    with path.open("w") as fh:
        for i in range(lo, hi):
            rec = {
                "conversation_id": f"c{i:03d}",
                "user_id": f"u{i % 4}",
                "model": "chat-model",
                "messages": [
                    {"role": "user", "content": f"Conversation {i}: should I tell the truth?"},
                    {"role": "assistant", "content": "Honesty matters, but be kind."},
                ],
            }
            fh.write(json.dumps(rec) + "\n")


def test_extract_on_workers_shares_one_cache(client, tmp_path):
    fakellm = pytest.importorskip("fakellm")
    key = "sk-test-DASK-0a1b2c3d"
    # the workers are already running: the key goes into their environment, not the test's
    client.run(os.environ.__setitem__, "OPENAI_API_KEY", key)
    try:
        with fakellm.FakeLLM(slow_seconds=1.0) as fake:
            first = tmp_path / "in4"
            first.mkdir()
            for k in range(4):
                _conversations(first / f"{k}.jsonl", 6 * k, 6 * (k + 1))
            kw = {
                "client": client,
                "provider": "openai",
                "model": "m",
                "base_url": fake.url + "/v1",
                "backoff_base": 0.01,
                "timeout": 5.0,
                "concurrency": 2,
                "cache_dir": str(tmp_path / "cache"),
            }
            out = tmp_path / "features"
            sums = vextract.extract(sorted(first.iterdir()), out, **kw)
            assert [s["done"] for s in sums] == [6] * 4
            assert sum(s["requests"] for s in sums) == len(fake.requests()) >= 24
            parts = sorted(out.glob("*.parquet"))
            assert len(parts) == 4
            ids = [i for p in parts for i in pq.read_table(p).column("conversation_id").to_pylist()]
            assert sorted(ids) == [f"c{i:03d}" for i in range(24)]
            assert [p.name for p in (tmp_path / "cache").iterdir() if p.suffix == ".sqlite3"] == [
                "extract.sqlite3"
            ]
            # the same conversations cut into other files, on whichever worker: no new request
            n = len(fake.requests())
            second = tmp_path / "in2"
            second.mkdir()
            _conversations(second / "a.jsonl", 0, 11)
            _conversations(second / "b.jsonl", 11, 24)
            sums = vextract.extract(sorted(second.iterdir()), tmp_path / "again", **kw)
            assert len(fake.requests()) == n
            assert [s["cached"] for s in sums] == [11, 13]
    finally:
        client.run(os.environ.pop, "OPENAI_API_KEY", None)
    opts = AnalyzeOptions(min_conversations=1, min_users=1, progress=False)
    rep = analyze_files([out], tmp_path / "analysis", opts)
    assert rep.summary["n_conversations"] == 24


def test_relative_paths_keep_their_names(features, client, tmp_path, monkeypatch):
    # the workers' working directory is not ours: they must still find the files, and the
    # rejects must name them as given
    monkeypatch.chdir(features.parent)
    opts = AnalyzeOptions(**SMALL, batch_size=200, progress=False)
    analyze_files([features.name], tmp_path / "one", opts)
    vdask.analyze([features.name], out=tmp_path / "dask", client=client, batch_size=200, **SMALL)
    assert_same_dir(tmp_path / "one", tmp_path / "dask")
    assert "features/part-0.parquet," in (tmp_path / "dask" / "rejects.csv").read_text()


def test_the_old_module_name_still_works_and_says_it_is_deprecated():
    import importlib
    import sys

    sys.modules.pop("valuescope.dask", None)
    with pytest.warns(DeprecationWarning, match="valuescope.analyze.on_dask"):
        old = importlib.import_module("valuescope.dask")
    assert old.analyze is vdask.analyze and old.local_cluster is vdask.local_cluster
    assert old.analyze_cli is vdask.analyze_cli and old.extract is vextract.extract
