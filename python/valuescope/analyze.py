"""`valuescope analyze`: stream feature files through the engine and write the analysis."""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from valuescope._core import Engine, SchemaError
from valuescope.atomic import atomic_open
from valuescope.errors import UserError
from valuescope.features import SCHEMA_COLUMNS, count_rows, expand_paths, iter_batches
from valuescope.output import write_analysis


@dataclass
class AnalyzeOptions:
    min_conversations: int = 15
    min_users: int = 10
    alpha: float = 0.05
    n_tests: int | None = None
    tables: list[tuple[str, str]] | None = None
    batch_size: int = 65_536
    progress: bool = True


@dataclass
class AnalyzeReport:
    out: Path
    summary: dict[str, Any]
    files: list[Path] = field(default_factory=list)
    seconds: float = 0.0


def parse_table(spec: str) -> tuple[str, str]:
    a, sep, b = spec.partition(":")
    if not sep or not a.strip() or not b.strip():
        raise UserError(f"--table {spec!r}: expected two column names as A:B")
    return a.strip(), b.strip()


def make_engine(opts: AnalyzeOptions) -> Engine:
    try:
        return Engine(
            tables=opts.tables,
            min_conversations=opts.min_conversations,
            min_users=opts.min_users,
            alpha=opts.alpha,
            n_tests=opts.n_tests,
        )
    except ValueError as exc:
        raise UserError(str(exc)) from None


def feed_files(
    engine: Engine,
    files: Sequence[Path],
    opts: AnalyzeOptions,
    on_reject: Callable[[Path, int, str | None, str], None],
) -> None:
    """Streams every file into `engine`; reports each rejected row with its file and row."""
    columns = list(SCHEMA_COLUMNS)
    for a, b in opts.tables or []:
        columns += [c for c in (a, b) if c not in columns]
    total = count_rows(files)
    with tqdm(
        total=total, unit="rows", unit_scale=True, desc="analyze", disable=not opts.progress
    ) as bar:
        for path in files:
            offset = 0
            for batch in iter_batches(path, columns, opts.batch_size):
                try:
                    rejects = engine.update(batch)
                except SchemaError as exc:
                    raise UserError(f"{path}: {exc}") from None
                if rejects.num_rows:
                    for r in rejects.to_pylist():
                        on_reject(path, offset + r["row"], r["conversation_id"], r["reason"])
                offset += batch.num_rows
                bar.update(batch.num_rows)


def analyze_files(
    paths: Iterable[str | Path], out: str | Path, opts: AnalyzeOptions | None = None
) -> AnalyzeReport:
    opts = opts or AnalyzeOptions()
    t0 = time.perf_counter()
    out = Path(out)
    files = expand_paths(paths)
    engine = make_engine(opts)
    out.mkdir(parents=True, exist_ok=True)
    rejects_path = out / "rejects.csv"
    with atomic_open(rejects_path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["file", "row", "conversation_id", "reason"])
        feed_files(
            engine, files, opts, lambda p, row, cid, why: w.writerow([str(p), row, cid, why])
        )
    result = engine.result()
    extra = {"inputs": [str(f) for f in files], "rejects_file": rejects_path.name}
    written = write_analysis(result, out, extra) + [rejects_path]
    summary = dict(result["summary"], **extra)
    return AnalyzeReport(out, summary, written, time.perf_counter() - t0)
