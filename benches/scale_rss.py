"""Scale benchmarks for issue 7.

    python benches/scale_rss.py rss 1e6 1e7 5e7     peak RSS of streaming N synthetic rows
    python benches/scale_rss.py dask 4e6            Dask on 2 local workers vs one process

`rss`: each size runs in a fresh process that generates feature batches on the fly (numpy, a
fixed vocabulary: the published 3,307 values when ../shared/data is there) and streams them
through one Engine; nothing is held but the current batch and the engine state, so peak RSS
must stay flat as N grows (the issue asks for within 1.5x from 1M to 50M).

`dask`: writes N rows to Parquet in a temporary directory (streamed, 8 files), then times the
same analysis three ways: one process (`analyze_files`, jobs=1), a process pool (`--jobs 2`) and
`valuescope.analyze.on_dask.analyze` on a LocalCluster of 2 worker processes; checks they agree.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from valuescope.analyze.options import DEFAULT_MEMORY_LIMIT

RESPONSE_TYPES = [
    "strong support",
    "mild support",
    "neutral acknowledgment",
    "reframing",
    "mild resistance",
    "strong resistance",
    "no values",
]
PUBLISHED = Path(__file__).resolve().parents[2] / "shared" / "data" / "values_frequencies.csv"


def vocabulary(size: int | None = None) -> tuple[pa.Array, np.ndarray]:
    """Value names (the `size` most frequent, or all) and their cumulative draw probabilities."""
    if PUBLISHED.exists():
        with PUBLISHED.open(encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        names = [r["value"] for r in rows]
        w = np.array([float(r["pct_convos"]) for r in rows])
    else:  # a Zipf-like stand-in of the same size
        names = [f"value {i}" for i in range(3307)]
        w = 1.0 / np.arange(1, 3308)
    names, w = names[:size], w[:size]
    cum = np.cumsum(w)
    return pa.array(names, pa.string()), cum / cum[-1]


def _lists(rng, n: int, counts: np.ndarray, vocab: pa.Array, cum: np.ndarray) -> pa.Array:
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    idx = np.searchsorted(cum, rng.random(int(offsets[-1])))
    return pa.ListArray.from_arrays(pa.array(offsets), vocab.take(pa.array(idx)))


def batches(
    n_rows: int,
    batch: int = 65_536,
    seed: int = 0,
    vocab_size: int | None = None,
    n_tasks: int = 266,
) -> Iterator[pa.RecordBatch]:
    """`n_rows` synthetic feature rows, made one batch at a time."""
    rng = np.random.default_rng(seed)
    vocab, cum = vocabulary(vocab_size)
    tasks = pa.array([f"task cluster {i}" for i in range(n_tasks)])
    models = pa.array(["model-a", "model-b", "model-c"])
    rtypes = pa.array(RESPONSE_TYPES)
    done = 0
    while done < n_rows:
        n = min(batch, n_rows - done)
        ids = pc.cast(pa.array(np.arange(done, done + n)), pa.string())
        users = pc.cast(pa.array(rng.integers(0, 2_000_000, n)), pa.string())
        ai = _lists(rng, n, rng.integers(0, 7, n), vocab, cum)
        human_n = np.where(rng.random(n) < 0.4, rng.integers(1, 3, n), 0)
        human = _lists(rng, n, human_n, vocab, cum)
        yield pa.record_batch(
            {
                "conversation_id": ids,
                "user_id": users,
                "model": models.take(pa.array(rng.integers(0, 3, n))),
                "subjective": pa.array(rng.random(n) < 0.9),
                "task_cluster": tasks.take(pa.array(rng.integers(0, n_tasks, n))),
                "ai_values": ai,
                "human_values": human,
                "response_type": rtypes.take(pa.array(rng.integers(0, 7, n))),
            }
        )
        done += n


def _stream(n_rows: int, vocab_size: int | None, n_tasks: int, generator: str, limit: int) -> None:
    """Child: stream n_rows through an Engine; print one JSON line."""
    from valuescope import Engine

    t0 = time.perf_counter()
    e = Engine(memory_limit=limit or None)
    if generator == "synth":
        # the calibrated synthetic corpus (valuescope.synth), a reader made batch by batch
        from valuescope.synth import synth_batches

        e.update(synth_batches(n_rows, seed=0))
    else:
        for b in batches(n_rows, vocab_size=vocab_size, n_tasks=n_tasks):
            e.update(b)
    streaming_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = e.result()
    secs = time.perf_counter() - t0
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(
        json.dumps(
            {
                "rows": n_rows,
                "seconds": round(secs, 1),
                "rows_per_s": round(n_rows / secs),
                "peak_rss_mib": round(peak_kib / 1024, 1),
                "peak_rss_before_result_mib": round(streaming_kib / 1024, 1),
                "n_conversations": result["summary"]["n_conversations"],
                "ai_values_rows": result["ai_values"].num_rows,
                # distinct keys: what the state (and so memory) may grow with
                "table_cells": sum(result["table_tests"].column("n_cells").to_pylist()),
                "memory_limit_mib": round(limit / 2**20, 1),
                "spilled_mib": round(e.spilled[0] / 2**20, 1),
                "spills": e.spilled[1],
            }
        )
    )


def _cpu() -> float:
    a = resource.getrusage(resource.RUSAGE_SELF)
    b = resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def rss(sizes: list[int], vocab_size: int | None, n_tasks: int, generator: str, limit: int) -> None:
    out = []
    for n in sizes:
        cmd = [sys.executable, __file__, "_stream", str(n), "--tasks", str(n_tasks)]
        cmd += ["--generator", generator, "--memory-limit", str(limit)]
        if vocab_size:
            cmd += ["--vocab", str(vocab_size)]
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode:
            sys.exit(p.stderr)
        rec = json.loads(p.stdout)
        out.append(rec)
        print(json.dumps(rec), flush=True)
    base = out[0]["peak_rss_mib"]
    for r in out:
        print(f"{r['rows']:>12,} rows  peak RSS {r['peak_rss_mib']:8.1f} MiB  "
              f"({r['peak_rss_mib'] / base:.2f}x)  {r['rows_per_s']:,} rows/s")  # fmt: skip


def dask_vs_one(n_rows: int, vocab_size: int | None, n_tasks: int, files: int = 8) -> None:
    import distributed
    import valuescope.analyze.on_dask as vdask
    from valuescope.analyze import AnalyzeOptions, analyze_files

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "features"
        d.mkdir()
        per = -(-n_rows // files)
        for i in range(files):
            rows = min(per, n_rows - i * per)
            # one generator per file, with the file's own seed
            gen = batches(rows, seed=i, vocab_size=vocab_size, n_tasks=n_tasks)
            first = next(gen)
            with pq.ParquetWriter(d / f"part-{i}.parquet", first.schema) as w:
                for b in itertools.chain([first], gen):
                    w.write_batch(b, row_group_size=131_072)
        timings: dict[str, tuple[float, float]] = {}

        def run(name: str, fn) -> None:
            # CPU seconds of this process and of every (grand)child it reaped: on a shared
            # machine wall time depends on the neighbours, CPU time much less
            c0, t0 = _cpu(), time.perf_counter()
            fn()
            timings[name] = (time.perf_counter() - t0, _cpu() - c0)

        run(
            "one process (jobs=1)",
            lambda: analyze_files([d], Path(tmp) / "one", AnalyzeOptions(progress=False, jobs=1)),
        )
        run(
            "process pool (jobs=2)",
            lambda: analyze_files([d], Path(tmp) / "pool", AnalyzeOptions(progress=False, jobs=2)),
        )

        def on_dask() -> None:
            with vdask.local_cluster(2, silence_logs=40) as c, distributed.Client(c) as client:
                vdask.analyze([d], out=Path(tmp) / "dask", client=client)

        run("dask LocalCluster, 2 workers", on_dask)  # includes starting the cluster
        for name in ("pool", "dask"):
            a = (Path(tmp) / "one" / "ai_values.csv").read_text()
            assert (Path(tmp) / name / "ai_values.csv").read_text() == a, name
    for k, (wall, cpu) in timings.items():
        print(f"{k:30s} wall {wall:7.2f} s  {n_rows / wall:10,.0f} rows/s   CPU {cpu:7.2f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["rss", "dask", "_stream"])
    ap.add_argument("sizes", nargs="*", type=float)
    ap.add_argument("--vocab", type=int, default=None, help="only the N most frequent values")
    ap.add_argument("--tasks", type=int, default=266, help="number of task clusters")
    ap.add_argument(
        "--generator",
        choices=["numpy", "synth"],
        default="numpy",
        help="rss: this script's numpy batches, or valuescope.synth (--vocab/--tasks ignored)",
    )
    ap.add_argument(
        "--memory-limit",
        type=int,
        default=DEFAULT_MEMORY_LIMIT,
        help="rss: the engine's table memory limit in bytes, as `analyze` sets it (0: none)",
    )
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes]
    if a.mode == "_stream":
        _stream(sizes[0], a.vocab, a.tasks, a.generator, a.memory_limit)
    elif a.mode == "rss":
        sizes = sizes or [1_000_000, 10_000_000, 50_000_000]
        rss(sizes, a.vocab, a.tasks, a.generator, a.memory_limit)
    else:
        dask_vs_one(sizes[0] if sizes else 4_000_000, a.vocab, a.tasks)


if __name__ == "__main__":
    main()
