"""Writing an analysis directory: CSV and JSON in the published shapes, each file atomic."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from valuescope import _core
from valuescope.atomic import atomic_open, write_bytes, write_text

if TYPE_CHECKING:
    import pyarrow as pa

#: result() key -> file name, in the order they are written.
FILES = {
    "ai_values": "ai_values.csv",
    "human_values": "human_values.csv",
    "ai_values_explicit": "ai_values_explicit.csv",
    "response_types": "response_types.csv",
    "mirroring": "mirroring.csv",
    "invariance": "invariance.csv",
    "models": "models.csv",
    "model_comparison": "model_comparison.csv",
    "table_tests": "table_tests.csv",
}

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
    for key, name in FILES.items():
        csvs.append((out / name, result[key], None))
        written.append(out / name)
    tests = {r["table"]: r for r in result["table_tests"].to_pylist()}
    for key, table in result.items():
        if not key.startswith("tables/"):
            continue
        name = key.removeprefix("tables/")
        csvs.append((out / "tables" / f"{name}.csv", table, TABLE_CSV_COLUMNS))
        t = tests[name]
        write_json(
            out / "tables" / f"{name}.json",
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
        written += [out / "tables" / f"{name}.csv", out / "tables" / f"{name}.json"]
    # csv_bytes releases the GIL: the files are formatted and written side by side
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        list(pool.map(lambda job: write_csv(*job), csvs))
    summary = dict(result["summary"])
    if extra_summary:
        summary.update(extra_summary)
    write_json(out / "summary.json", summary)  # last: its presence means the rest is there
    written.append(out / "summary.json")
    return written
