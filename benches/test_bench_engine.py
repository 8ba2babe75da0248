"""Micro-benchmarks of the engine on the synthetic corpus (pytest-benchmark).

    pytest benches/test_bench_engine.py --benchmark-columns=min,median,rounds

Update throughput per batch size, plain vs dictionary-encoded strings, reading Parquet with
valuescope's reader or pyarrow's, merge, and the state's serialisation. Rows per second are in
each result's extra_info (``--benchmark-json``).
No assertions on time: these measure, the tests elsewhere check behaviour.
"""

from __future__ import annotations

import pyarrow as pa
import pytest
import valuescope
from valuescope import synth

ROWS = 200_000
SEED = 1


@pytest.fixture(scope="module")
def dict_table() -> pa.Table:
    return synth.synth_batches(ROWS, SEED, dictionary=True).read_all()


@pytest.fixture(scope="module")
def plain_table() -> pa.Table:
    return synth.synth_batches(ROWS, SEED, dictionary=False).read_all()


def _batches(table: pa.Table, size: int) -> list[pa.RecordBatch]:
    # re-chunk once, outside the timed part
    return table.combine_chunks().to_batches(max_chunksize=size)


def _rate(benchmark) -> None:
    # absent under --benchmark-disable, where the benchmarks run once as plain tests
    if benchmark.stats is not None:
        benchmark.extra_info["rows_per_s"] = ROWS / benchmark.stats.stats.median


def _ingest(batches: list[pa.RecordBatch]) -> valuescope.Engine:
    engine = valuescope.Engine()
    for b in batches:
        engine.update(b)
    return engine


@pytest.mark.parametrize("batch_size", [1_024, 8_192, 65_536, 200_000])
def test_update_per_batch_size(benchmark, dict_table, batch_size):
    batches = _batches(dict_table, batch_size)
    engine = benchmark.pedantic(_ingest, args=(batches,), rounds=3, iterations=1)
    assert engine.n_rows == ROWS
    _rate(benchmark)


@pytest.mark.parametrize("encoding", ["plain", "dictionary"])
def test_update_plain_vs_dictionary(benchmark, dict_table, plain_table, encoding):
    table = dict_table if encoding == "dictionary" else plain_table
    batches = _batches(table, 65_536)
    engine = benchmark.pedantic(_ingest, args=(batches,), rounds=3, iterations=1)
    assert engine.n_rows == ROWS
    _rate(benchmark)


@pytest.fixture(scope="module")
def halves(dict_table) -> tuple[bytes, bytes]:
    a = _ingest(_batches(dict_table.slice(0, ROWS // 2), 65_536))
    b = _ingest(_batches(dict_table.slice(ROWS // 2), 65_536))
    return a.to_bytes(), b.to_bytes()


def test_merge(benchmark, halves):
    def setup():
        a, b = (valuescope.Engine.from_bytes(h) for h in halves)
        return (a, b), {}

    def merge(a, b):
        a.merge(b)
        return a

    merged = benchmark.pedantic(merge, setup=setup, rounds=5, iterations=1)
    assert merged.n_rows == ROWS


def test_to_bytes(benchmark, halves):
    engine = valuescope.Engine.from_bytes(halves[0])
    data = benchmark(engine.to_bytes)
    benchmark.extra_info["state_bytes"] = len(data)


def test_from_bytes(benchmark, halves):
    engine = benchmark(valuescope.Engine.from_bytes, halves[0])
    assert engine.n_rows == ROWS // 2


def test_result(benchmark, halves):
    engine = valuescope.Engine.from_bytes(halves[0])
    out = benchmark.pedantic(engine.result, rounds=3, iterations=1)
    assert out["summary"]["n_conversations"] > 0


def test_synth_generation(benchmark):
    """The generator itself: rows per second into Arrow (dictionary strings)."""
    table = benchmark.pedantic(
        lambda: synth.synth_batches(ROWS, SEED).read_all(), rounds=3, iterations=1
    )
    assert table.num_rows == ROWS
    _rate(benchmark)


@pytest.fixture(scope="module")
def feature_file(tmp_path_factory, plain_table) -> str:
    import pyarrow.parquet as pq

    path = tmp_path_factory.mktemp("bench") / "features.parquet"
    pq.write_table(plain_table, path, row_group_size=131_072, compression="zstd")
    return str(path)


@pytest.mark.parametrize("reader", ["valuescope", "pyarrow"])
def test_read_and_update(benchmark, feature_file, reader):
    """A Parquet file read and counted: valuescope's reader (what `analyze` uses) against
    pyarrow's, both with dictionary-decoded value columns and decoding on a thread of their own."""
    from pathlib import Path

    from valuescope.features import _prefetch, iter_batches, read_batches
    from valuescope.schema import FEATURE_COLUMNS

    def run() -> valuescope.Engine:
        engine = valuescope.Engine()
        path = Path(feature_file)
        if reader == "valuescope":
            batches = iter_batches(path, FEATURE_COLUMNS, 65_536)
        else:
            batches = _prefetch(read_batches(path, FEATURE_COLUMNS, 65_536), path)
        for b in batches:
            engine.feed(b)
        return engine

    engine = benchmark.pedantic(run, rounds=3, iterations=1)
    assert engine.n_rows == ROWS
    _rate(benchmark)
