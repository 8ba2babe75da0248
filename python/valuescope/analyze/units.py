"""Work units for scale-out: Parquet files cut at row-group boundaries, each folded into its own
engine state in another process (or Dask worker), the states merged in the parent.

A unit is a contiguous run of row groups of one file, so a reject's row number inside the file is
the unit's first row plus the row inside the unit: rejects.csv reads the same as in one pass.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from valuescope.analyze.options import AnalyzeOptions, new_engine
from valuescope.errors import UserError
from valuescope.features import iter_batches, row_group_rows
from valuescope.schema import FEATURE_COLUMNS, TASK_COLUMNS


@dataclass(frozen=True)
class Unit:
    index: int
    path: str
    #: Row groups to read, in order; None reads the whole file.
    row_groups: tuple[int, ...] | None
    #: Row number (inside the file) of the unit's first row.
    first_row: int
    n_rows: int
    #: The file's name in rejects and errors, when `path` is not the name the user gave
    #: (Dask workers get absolute paths: their working directory may differ).
    label: str | None = None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["row_groups"] = None if self.row_groups is None else list(self.row_groups)
        return d

    @staticmethod
    def from_json(d: dict[str, Any]) -> Unit:
        rg = d["row_groups"]
        return Unit(
            d["index"],
            d["path"],
            None if rg is None else tuple(rg),
            d["first_row"],
            d["n_rows"],
            d.get("label"),
        )


#: A rejected row: (file, row in file, conversation_id, reason).
Reject = tuple[str, int, "str | None", str]


@dataclass
class UnitResult:
    index: int
    state: bytes
    rejects: list[Reject] = field(default_factory=list)
    n_rows: int = 0
    n_batches: int = 0


def columns_for(tables: Sequence[tuple[str, str]] | None) -> list[str]:
    """The columns the engine reads: all of the schema's for the default tables; with tables of
    the user's, the task columns only if a table crosses them (reading costs decoding time)."""
    if tables is None:
        return list(FEATURE_COLUMNS)
    cols = [c for c in FEATURE_COLUMNS if c not in TASK_COLUMNS]
    for a, b in tables:
        cols += [c for c in (a, b) if c not in cols]
    return cols


def plan_units(files: Sequence[Path], target_rows: int | None) -> list[Unit]:
    """One unit per file when `target_rows` is None; otherwise consecutive row groups gathered
    until they hold at least `target_rows` rows (a row group is never split: Parquet cannot seek
    inside one)."""
    units: list[Unit] = []
    for path in files:
        sizes = row_group_rows(path)
        if target_rows is None or len(sizes) <= 1:
            units.append(Unit(len(units), str(path), None, 0, sum(sizes)))
            continue
        start, groups, rows = 0, [], 0
        for g, size in enumerate(sizes):
            groups.append(g)
            rows += size
            if rows >= target_rows or g == len(sizes) - 1:
                units.append(Unit(len(units), str(path), tuple(groups), start, rows))
                start += rows
                groups, rows = [], 0
    return units


def target_rows_for(total_rows: int, workers: int, batch_size: int) -> int:
    # A few units per worker balances uneven files; no smaller than a batch, no larger than
    # a couple of million rows so that a lost unit (or a checkpoint step) costs little.
    return max(batch_size, min(2_000_000, math.ceil(total_rows / max(1, 4 * workers))))


def iter_unit_batches(
    unit: Unit, columns: Sequence[str], batch_size: int, skip_rows: int = 0
) -> Iterator[Any]:
    """The unit's batches, the first `skip_rows` rows left out (for a resumed unit)."""
    it = iter_batches(Path(unit.path), columns, batch_size, unit.row_groups, unit.first_row)
    for batch in it:
        if skip_rows >= batch.num_rows:
            skip_rows -= batch.num_rows
            continue
        if skip_rows:
            batch = batch.slice(skip_rows)
            skip_rows = 0
        yield batch


def feed_unit(
    engine, unit: Unit, opts: AnalyzeOptions, skip_rows: int = 0
) -> Iterator[tuple[int, list]]:
    """Feeds the unit's batches into `engine`; yields (rows, rejects) after each batch, rejects
    as (file, row in file, conversation_id, reason)."""
    from valuescope._core import SchemaError

    offset = unit.first_row + skip_rows
    name = unit.label or unit.path
    for batch in iter_unit_batches(unit, columns_for(opts.tables), opts.batch_size, skip_rows):
        try:
            rej = engine.feed(batch)
        except SchemaError as exc:
            raise UserError(f"{name}: {exc}") from None
        except ValueError as exc:  # data the Parquet reader let through unchecked (not UTF-8)
            last = offset + batch.num_rows - 1
            raise UserError(f"{name}: rows {offset}-{last}: {exc}") from None
        rejects = [(name, offset + row, cid, reason) for row, cid, reason in rej]
        offset += batch.num_rows
        yield batch.num_rows, rejects


def run_unit(unit: Unit, opts: AnalyzeOptions) -> UnitResult:
    """Folds one unit into a fresh engine; what a pool process or a Dask task runs."""
    engine = new_engine(opts)
    res = UnitResult(unit.index, b"")
    for rows, rejects in feed_unit(engine, unit, opts):
        res.n_rows += rows
        res.n_batches += 1
        res.rejects += rejects
    res.state = engine.to_bytes()
    return res


def combine(*results: UnitResult) -> UnitResult:
    """Merges unit results given in unit order: one state, rejects kept in order."""
    from valuescope._core import Engine

    first = results[0]
    engine = Engine.from_bytes(first.state)
    out = UnitResult(first.index, b"", list(first.rejects), first.n_rows, first.n_batches)
    for r in results[1:]:
        engine.merge(Engine.from_bytes(r.state))
        out.rejects += r.rejects
        out.n_rows += r.n_rows
        out.n_batches += r.n_batches
    out.state = engine.to_bytes()
    return out
