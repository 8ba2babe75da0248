"""Units on a pool of processes of this machine (`analyze --jobs N`)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

from valuescope.analyze.options import AnalyzeOptions, new_engine
from valuescope.analyze.units import Unit, UnitResult, feed_unit, run_unit
from valuescope.errors import UserError


def default_jobs() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _init_worker(threads: int) -> None:
    # The engine also parallelises inside a batch (rayon); with one process per core that
    # would oversubscribe. Rayon's global pool reads this when the first engine is built.
    os.environ["RAYON_NUM_THREADS"] = str(threads)


def run_pool(units: Sequence[Unit], opts: AnalyzeOptions, jobs: int) -> Iterator[UnitResult]:
    """Runs the units on `jobs` processes; yields results as they complete (any order)."""
    # spawn, not fork: the parent may already hold rayon and reader threads, and forking a
    # process with threads can deadlock the child.
    # imported here: a one-process run (the default) needs neither
    import concurrent.futures as cf
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    threads = max(1, default_jobs() // jobs)
    with cf.ProcessPoolExecutor(
        max_workers=jobs, mp_context=ctx, initializer=_init_worker, initargs=(threads,)
    ) as pool:
        pending = {pool.submit(run_unit, u, opts) for u in units}
        try:
            while pending:
                done, pending = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                for f in done:
                    yield f.result()
        finally:
            for f in pending:
                f.cancel()


def _worker_loop(tasks: Any, results: Any, opts: AnalyzeOptions, threads: int) -> None:
    _init_worker(threads)
    try:
        engine = new_engine(opts)
        while (unit := tasks.get()) is not None:
            res = UnitResult(unit.index, b"")
            for rows, rejects in feed_unit(engine, unit, opts):
                res.n_rows += rows
                res.n_batches += 1
                res.rejects += rejects
            results.put(("unit", res))
        results.put(("state", engine.to_bytes()))
    except BaseException as exc:  # whatever it is, the parent must hear of it
        import traceback

        err = exc if isinstance(exc, UserError) else RuntimeError(traceback.format_exc())
        results.put(("error", err))


def run_workers(
    units: Sequence[Unit], opts: AnalyzeOptions, jobs: int
) -> Iterator[UnitResult | bytes]:
    """Like `run_pool`, but each process folds all the units it takes into one engine and sends
    its state once, at the end: `jobs` serialisations and merges instead of one per unit (with
    a large vocabulary those cost about as much as counting the unit). Yields a UnitResult
    without state as each unit finishes, then each process's state (bytes)."""
    import multiprocessing
    import queue

    ctx = multiprocessing.get_context("spawn")  # see run_pool
    threads = max(1, default_jobs() // jobs)
    tasks, results = ctx.Queue(), ctx.Queue()
    for u in units:
        tasks.put(u)
    for _ in range(jobs):
        tasks.put(None)
    procs = [
        ctx.Process(target=_worker_loop, args=(tasks, results, opts, threads), daemon=True)
        for _ in range(jobs)
    ]
    for p in procs:
        p.start()
    states = 0
    try:
        while states < jobs:
            try:
                kind, payload = results.get(timeout=0.5)
            except queue.Empty:
                # a process killed from outside (out of memory) sends nothing: notice it
                dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
                if dead:
                    raise UserError(f"a worker process died (exit status {dead[0]})") from None
                continue
            if kind == "error":
                raise payload
            if kind == "state":
                states += 1
            yield payload
    finally:
        for p in procs:
            if p.is_alive() and states < jobs:
                p.terminate()
        for p in procs:
            p.join()
