"""Writing an analysis directory: CSV and JSON in the published shapes, each file atomic."""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from valuescope import _core
from valuescope.atomic import atomic_open, write_bytes, write_text
from valuescope.layout import RESULT_FILES, SUMMARY, table_csv, table_json

if TYPE_CHECKING:
    import pyarrow as pa


TABLE_CSV_COLUMNS = ("row", "col", "observed", "expected", "adjusted_residual", "significant")


def line_terminator(has_cr: bool) -> str:
    """Python's csv writer quotes a field that holds its line terminator but not one that holds
    a lone carriage return, which a reader then takes for a line break. Files are written with
    "\n"; a file with a carriage return in some field gets "\r\n", so that the field is quoted."""
    return "\r\n" if has_cr else "\n"


#: Rows formatted at a time: a large table's CSV is written piece by piece, so that the text
#: of a 10M-row analysis's biggest table (17 MB) is never held whole.
CSV_CHUNK_ROWS = 65_536


def csv_bytes(table: pa.Table, columns: Sequence[str] | None = None, header: bool = True) -> bytes:
    """The table as CSV, formatted in Rust from the Arrow buffers: null and NaN are empty, floats
    as Python's repr, booleans true/false; a field with a comma, quote or line break is quoted."""
    return _core.csv_bytes(table, None if columns is None else list(columns), header)


def write_csv(path: Path, table: pa.Table, columns: Sequence[str] | None = None) -> None:
    if table.num_rows <= CSV_CHUNK_ROWS:
        write_bytes(path, csv_bytes(table, columns))
        return
    with atomic_open(path, "wb") as fh:
        for start in range(0, table.num_rows, CSV_CHUNK_ROWS):
            part = table.slice(start, CSV_CHUNK_ROWS)
            fh.write(csv_bytes(part, columns, header=start == 0))


def write_json(path: Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


def _json_num(x: Any) -> Any:
    return None if isinstance(x, float) and not math.isfinite(x) else x


def write_analysis(result: Mapping[str, Any], out: Path, extra_summary: Mapping | None = None):
    """Writes every published figure of an Engine.result() under `out`; returns the paths."""
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    csvs: list[tuple[Path, pa.Table, Sequence[str] | None]] = []
    for key, name in RESULT_FILES.items():
        if key not in result:  # a table the features give nothing for (see RESULT_FILES)
            (out / name).unlink(missing_ok=True)  # not one left from an earlier run
            continue
        csvs.append((out / name, result[key], None))
        written.append(out / name)
    tests = {r["table"]: r for r in result["table_tests"].to_pylist()}
    for key, table in result.items():
        if not key.startswith("tables/"):
            continue
        name = key.removeprefix("tables/")
        csvs.append((table_csv(out, name), table, TABLE_CSV_COLUMNS))
        t = tests[name]
        write_json(
            table_json(out, name),
            {
                "table": name,
                "row_column": t["row_column"],
                "col_column": t["col_column"],
                "chi2": _json_num(t["chi2"]),
                "dof": t["dof"],
                "p_value": _json_num(t["p_value"]),
                "n": t["n"],
                "threshold": _json_num(t["threshold"]),
                "n_tests": t["n_tests"],
                "n_cells": t["n_cells"],
                "suppressed_cells": t["suppressed_cells"],
            },
        )
        written += [table_csv(out, name), table_json(out, name)]
    # csv_bytes releases the GIL: the files are formatted and written side by side
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        list(pool.map(lambda job: write_csv(*job), csvs))
    summary = dict(result["summary"])
    if extra_summary:
        summary.update(extra_summary)
    write_json(out / SUMMARY, summary)  # last: its presence means the rest is there
    written.append(out / SUMMARY)
    return written


REJECTS_HEADER = ("file", "row", "conversation_id", "reason")


class RejectsWriter:
    """rejects.csv rows on a binary file, so that a checkpoint can record its byte length."""

    def __init__(self, fh: Any, header: bool):
        self.fh = fh
        if header:
            self.write([REJECTS_HEADER])

    def write(self, rows: Iterable[Sequence[Any]]) -> None:
        rows = list(rows)
        has_cr = any(isinstance(c, str) and "\r" in c for row in rows for c in row)
        buf = io.StringIO()
        csv.writer(buf, lineterminator=line_terminator(has_cr)).writerows(rows)
        if buf.tell():
            self.fh.write(buf.getvalue().encode("utf-8"))
