"""`valuescope analyze`: stream feature files through the engine and write the analysis."""

from __future__ import annotations

import contextlib
import importlib
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from valuescope._core import Engine
from valuescope.analyze.checkpoints import Checkpointer, Position, fingerprint
from valuescope.analyze.options import (
    POOL_MIN_ROWS,
    AnalyzeOptions,
    AnalyzeReport,
    engine_options,
    new_engine,
)
from valuescope.analyze.output import RejectsWriter, write_analysis
from valuescope.analyze.pool import default_jobs, run_pool, run_workers
from valuescope.analyze.units import Unit, feed_unit, plan_units, target_rows_for
from valuescope.atomic import atomic_open
from valuescope.errors import UserError
from valuescope.features import check_columns, count_rows, expand_paths
from valuescope.layout import REJECTS


class _NoBar:
    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int) -> None:
        pass


def progress_bar(total: int, initial: int = 0, enabled: bool = True) -> Any:
    """A tqdm bar over rows; without one, tqdm is not even imported."""
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="rows", unit_scale=True, desc="analyze")


def import_pyarrow_meanwhile() -> None:
    """The results come as pyarrow tables, and importing pyarrow takes a tenth of a second of
    one core. Reading and counting need neither pyarrow nor the GIL, so it is imported on a
    thread of its own while they run."""
    if "pyarrow" not in sys.modules:
        threading.Thread(target=_import_quietly, args=("pyarrow",), daemon=True).start()


def _import_quietly(name: str) -> None:
    # a failure is met again where the module is needed, and reported there
    with contextlib.suppress(ImportError):
        importlib.import_module(name)


def _flush_in_order(pos: Position, writer: RejectsWriter) -> None:
    """Writes the rejects of finished units in unit order, stopping at the first unfinished
    one, so that rejects.csv reads as in one pass whatever order the units end in."""
    for u in pos.plan:
        if u.index not in pos.done:
            return
        rejects = pos.pending_rejects.pop(u.index, None)
        if rejects:
            writer.write(rejects)


class _Run:
    def __init__(
        self,
        engine: Engine,
        pos: Position,
        writer: RejectsWriter,
        ck: Checkpointer | None,
        opts: AnalyzeOptions,
        bar: Any,
    ):
        self.engine = engine
        self.pos = pos
        self.writer = writer
        self.ck = ck
        self.opts = opts
        self.bar = bar

    def checkpoint(self, batches: int) -> None:
        if self.ck is not None and self.ck.tick(batches):
            self.ck.save(self.pos, self.engine.to_bytes(), self.writer.fh)

    def serial(self, unit: Unit) -> None:
        """Reads one unit here, from where a checkpoint left it; checkpoints between batches."""
        pos = self.pos
        _flush_in_order(pos, self.writer)  # every earlier unit is finished: its rejects first
        skip = pos.partial.get(unit.index, 0)
        for rows, rejects in feed_unit(self.engine, unit, self.opts, skip):
            self.writer.write(rejects)
            pos.partial[unit.index] = pos.partial.get(unit.index, 0) + rows
            pos.rows += rows
            pos.batches += 1
            self.bar.update(rows)
            self.checkpoint(1)
        pos.partial.pop(unit.index, None)
        pos.done.add(unit.index)

    def pooled(self, units: Sequence[Unit], jobs: int) -> None:
        pos = self.pos
        # A checkpoint needs every finished unit's counts in the parent; without one, each
        # process keeps its own engine and sends it once (far fewer merges).
        if self.ck is None:
            results = run_workers(units, self.opts, jobs)
        else:
            results = run_pool(units, self.opts, jobs)
        for res in results:
            if isinstance(res, bytes):
                self.engine.merge(Engine.from_bytes(res))
                continue
            if res.state:
                self.engine.merge(Engine.from_bytes(res.state))
            pos.done.add(res.index)
            if res.rejects:
                pos.pending_rejects[res.index] = res.rejects
            pos.rows += res.n_rows
            pos.batches += res.n_batches
            _flush_in_order(pos, self.writer)
            self.bar.update(res.n_rows)
            self.checkpoint(res.n_batches)


def analyze_files(
    paths: Iterable[str | Path],
    out: str | Path,
    opts: AnalyzeOptions | None = None,
    summary_extra: Mapping[str, Any] | None = None,
) -> AnalyzeReport:
    """Analyses Parquet feature files into `out`; with `opts.jobs` > 1 over a process pool,
    with `opts.checkpoint_every` checkpointed, with `opts.resume` continued from a checkpoint.
    Every mode writes the same files. `summary_extra` adds keys to summary.json (what earlier
    stages know about the input, such as the extraction's model)."""
    opts = opts or AnalyzeOptions()
    t0 = time.perf_counter()
    out = Path(out)
    files = expand_paths(paths)
    engine = new_engine(opts)  # checks the settings before any work
    check_columns(files, opts.tables)
    if opts.jobs is not None and opts.jobs < 1:
        raise UserError(f"--jobs {opts.jobs}: expected at least 1")
    total = count_rows(files)
    if opts.jobs is not None:
        jobs = opts.jobs
    else:
        jobs = default_jobs() if total >= POOL_MIN_ROWS else 1
    out.mkdir(parents=True, exist_ok=True)
    rejects_path = out / REJECTS

    keep: int | None = None
    ck = Checkpointer(out, fingerprint(files, engine_options(opts)), opts.checkpoint_every)
    if opts.resume and ck.exists():
        pos, state, keep = ck.load()
        # into the fresh engine, which carries this run's memory limit
        engine.merge(Engine.from_bytes(state))
    else:
        if ck.exists():
            # said, not silent: a forgotten --resume throws away the work the checkpoint holds
            sys.stderr.write(
                f"valuescope: note: starting afresh; discarding the checkpoint in {out}/ "
                "(--resume continues one)\n"
            )
        ck.discard()
        if not opts.checkpoint_every:
            ck = None
        # One process reads whole files; a pool gets row-group units to share out.
        target = None if jobs == 1 else target_rows_for(total, jobs, opts.batch_size)
        pos = Position(plan_units(files, target))

    with contextlib.ExitStack() as stack:
        if ck is not None:
            fh = stack.enter_context(ck.open_rejects(keep))
            writer = RejectsWriter(fh, header=keep is None)
        else:
            fh = stack.enter_context(atomic_open(rejects_path, "wb"))
            writer = RejectsWriter(fh, header=True)
        bar = stack.enter_context(progress_bar(total, pos.rows, enabled=opts.progress))
        run = _Run(engine, pos, writer, ck, opts, bar)
        import_pyarrow_meanwhile()
        todo = [u for u in pos.plan if u.index not in pos.done]
        # A unit a serial run left half read is finished here: a pool starts units afresh.
        for u in [u for u in todo if u.index in pos.partial]:
            run.serial(u)
        todo = [u for u in todo if u.index not in pos.done]
        if jobs > 1 and len(todo) > 1:
            run.pooled(todo, min(jobs, len(todo)))
        else:
            for u in todo:
                run.serial(u)
        _flush_in_order(pos, writer)

    result = engine.result()
    extra = {**(summary_extra or {}), "inputs": [str(f) for f in files]}
    extra["rejects_file"] = rejects_path.name
    written = write_analysis(result, out, extra) + [rejects_path]
    if ck is not None:
        # Only now: a crash before this point resumes from the last checkpoint.
        ck.finish(rejects_path)
    summary = dict(result["summary"], **extra)
    return AnalyzeReport(out, summary, written, time.perf_counter() - t0)
