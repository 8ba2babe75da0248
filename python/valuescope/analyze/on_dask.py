"""valuescope on Dask: Parquet row groups (or a Dask DataFrame's partitions) become engine states
on the workers, the states are merged in a tree, and the parent writes exactly the files that
`valuescope analyze` writes.

    from dask.distributed import Client
    import valuescope.analyze.on_dask
    client = Client("tcp://scheduler:8786")
    valuescope.analyze.on_dask.analyze("s3-mounted/features/", out="analysis", min_users=10)

Needs the optional extra: ``pip install 'valuescope[dask]'``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from valuescope._dask_support import import_dask, n_workers
from valuescope.analyze.options import AnalyzeOptions, AnalyzeReport, engine_options, new_engine
from valuescope.analyze.output import RejectsWriter, write_analysis
from valuescope.analyze.units import (
    Unit,
    UnitResult,
    columns_for,
    combine,
    plan_units,
    run_unit,
    target_rows_for,
)
from valuescope.atomic import atomic_open
from valuescope.errors import UserError
from valuescope.features import check_columns, count_rows, expand_paths
from valuescope.layout import DEFAULT_ANALYSIS_OUT, REJECTS
from valuescope.schema import FEATURE_TYPES, arrow_type

ENGINE_OPTIONS = tuple(engine_options(AnalyzeOptions()))


def _frame_unit(frame: Any, index: int, opts: AnalyzeOptions) -> UnitResult:
    """One pandas partition of a Dask DataFrame folded into a fresh engine."""
    from valuescope._core import SchemaError

    table = pa.Table.from_pandas(frame, preserve_index=False)
    wanted = [c for c in columns_for(opts.tables) if c in table.column_names]
    table = table.select(wanted)
    for i, name in enumerate(table.column_names):
        if pa.types.is_null(table.schema.field(i).type):
            table = table.set_column(
                i,
                name,
                table.column(i).cast(arrow_type(name) if name in FEATURE_TYPES else pa.string()),
            )
    label = f"<dask partition {index}>"
    engine = new_engine(opts)
    try:
        rej = engine.update(table)
    except SchemaError as exc:
        raise UserError(f"{label}: {exc}") from None
    rejects = [(label, r["row"], r["conversation_id"], r["reason"]) for r in rej.to_pylist()]
    return UnitResult(index, engine.to_bytes(), rejects, table.num_rows, 1)


def _tree(dask_mod: Any, leaves: list, fan_in: int):
    """Merges delayed unit results `fan_in` at a time, level by level, keeping unit order (so
    the rejects come out in file order); the root is one delayed UnitResult."""
    level = leaves
    while len(level) > 1:
        level = [
            dask_mod.delayed(combine, pure=True)(*level[i : i + fan_in])
            for i in range(0, len(level), fan_in)
        ]
    return level[0]


def analyze(
    data: Any,
    out: str | Path = DEFAULT_ANALYSIS_OUT,
    *,
    client: Any = None,
    batch_size: int = 65_536,
    fan_in: int = 8,
    **engine_options: Any,
) -> AnalyzeReport:
    """Analyses `data` (Parquet paths / directories, or a Dask DataFrame) on Dask and writes the
    analysis directory `out`. `client`: a ``distributed.Client`` (default: the current one, or
    Dask's default scheduler). `engine_options`: tables, min_conversations, min_users, alpha,
    n_tests, as for `valuescope.Engine`."""
    dask_mod, _ = import_dask()
    unknown = set(engine_options) - set(ENGINE_OPTIONS)
    if unknown:
        raise UserError(f"unknown engine option(s): {', '.join(sorted(unknown))}")
    if fan_in < 2:
        raise UserError("fan_in must be at least 2")
    opts = AnalyzeOptions(batch_size=batch_size, progress=False, **engine_options)
    new_engine(opts)  # checks the settings here, not on a worker
    if client is None:
        with contextlib.suppress(ValueError, ImportError):
            from distributed import get_client

            client = get_client()
    t0 = time.perf_counter()
    out = Path(out)

    if hasattr(data, "to_delayed") and hasattr(data, "npartitions"):
        parts = data.to_delayed()
        leaves = [dask_mod.delayed(_frame_unit, pure=True)(p, i, opts) for i, p in enumerate(parts)]
        inputs = [f"dask.dataframe({len(parts)} partitions)"]
    else:
        paths = [data] if isinstance(data, str | os.PathLike) else list(data)
        files = expand_paths(paths)
        check_columns(files, opts.tables)
        total = count_rows(files)
        units: Sequence[Unit] = [
            dataclasses.replace(u, path=str(Path(u.path).resolve()), label=u.path)
            for u in plan_units(files, target_rows_for(total, n_workers(client), batch_size))
        ]
        leaves = [dask_mod.delayed(run_unit, pure=True)(u, opts) for u in units]
        inputs = [str(f) for f in files]
    if not leaves:
        root = UnitResult(0, new_engine(opts).to_bytes())
    elif client is not None:
        root = client.compute(_tree(dask_mod, leaves, fan_in)).result()
    else:
        (root,) = dask_mod.compute(_tree(dask_mod, leaves, fan_in))
    return _write(root, out, inputs, t0)


def _write(root: UnitResult, out: Path, inputs: list[str], t0: float) -> AnalyzeReport:
    from valuescope._core import Engine

    engine = Engine.from_bytes(root.state)
    out.mkdir(parents=True, exist_ok=True)
    rejects_path = out / REJECTS
    with atomic_open(rejects_path, "wb") as fh:
        RejectsWriter(fh, header=True).write(root.rejects)
    result = engine.result()
    extra = {"inputs": inputs, "rejects_file": rejects_path.name}
    written = write_analysis(result, out, extra) + [rejects_path]
    summary = dict(result["summary"], **extra)
    return AnalyzeReport(out, summary, written, time.perf_counter() - t0)


def local_cluster(n_workers: int, **kwargs: Any):
    """A LocalCluster of `n_workers` single-threaded processes; each engine gets an equal
    share of the cores for its own threads, so that the workers do not oversubscribe them."""
    _, distributed = import_dask()
    threads = max(1, (os.cpu_count() or 1) // n_workers)
    # the scheduler's HTTP server on a free port: no clash (and warning) with another cluster
    kwargs.setdefault("dashboard_address", ":0")
    # A task's error reaches the caller as its exception (one line from the CLI); the workers'
    # own "Compute Failed" log would add a traceback on stderr.
    kwargs.setdefault("silence_logs", logging.CRITICAL)
    return distributed.LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=True,
        env={"RAYON_NUM_THREADS": str(threads)},
        **kwargs,
    )


def analyze_cli(
    features: Iterable[str | Path], out: Path, opts: AnalyzeOptions, address: str
) -> AnalyzeReport:
    """`valuescope analyze --dask ADDRESS|local:N`."""
    if opts.checkpoint_every or opts.resume:
        raise UserError("--checkpoint-every and --resume do not apply with --dask")
    dask_mod, distributed = import_dask()
    eng = {k: getattr(opts, k) for k in ENGINE_OPTIONS}
    with contextlib.ExitStack() as stack:
        if address.startswith("local:"):
            n = address.removeprefix("local:")
            if not n.isdigit() or int(n) < 1:
                raise UserError(f"--dask {address}: expected local:N with N >= 1 workers")
            cluster = stack.enter_context(local_cluster(int(n)))
            client = stack.enter_context(distributed.Client(cluster))
        else:
            try:
                # Dask's own connect timeout (DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT)
                timeout = dask_mod.config.get("distributed.comm.timeouts.connect")
                client = stack.enter_context(distributed.Client(address, timeout=timeout))
            except (OSError, TimeoutError, ValueError) as exc:
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                raise UserError(f"--dask {address}: cannot reach the scheduler ({first})") from None
        return analyze(list(features), out, client=client, batch_size=opts.batch_size, **eng)
