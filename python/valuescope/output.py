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
    "explicit_by_response_type": "explicit_by_response_type.csv",
    "table_tests": "table_tests.csv",
}

#: result() key -> file name, for the figures only some analyses have: the comparison of
#: models within task clusters (more than one model and a task cluster column) and the
#: response-type mix of value pairs (the default tables).
OPTIONAL_FILES = {
    "model_comparison_within_tasks": "model_comparison_within_tasks.csv",
    "value_pairs": "value_pairs.csv",
}

#: Findings computed from the published figures (valuescope.findings), after the engine; the
#: values to watch are written with the report.
EXPLICIT_VALUES_FILE = "explicit_values.csv"
WATCH_FILE = "values_to_watch.csv"

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


def write_analysis(
    result: Mapping[str, Any],
    out: Path,
    extra_summary: Mapping | None = None,
    watch: Sequence[str] | None = None,
):
    """Writes every published figure of an Engine.result() under `out`, and the values stated
    outright (explicit_values.csv); returns the paths. `watch`: the values to watch, kept in
    summary.json for the report (None: the default list)."""
    from valuescope.findings.explicit import explicit_values, explicit_values_csv

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    csvs: list[tuple[Path, pa.Table, Sequence[str] | None]] = []
    for key, name in FILES.items():
        csvs.append((out / name, result[key], None))
        written.append(out / name)
    for key, name in OPTIONAL_FILES.items():
        if key in result:
            csvs.append((out / name, result[key], None))
            written.append(out / name)
        else:  # a file left by an earlier analysis in this directory would be read as this one's
            (out / name).unlink(missing_ok=True)
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
    pairs = [
        list(
            zip(
                result[k].column("value").to_pylist(),
                result[k].column("n_conversations").to_pylist(),
                strict=True,
            )
        )
        for k in ("ai_values", "ai_values_explicit")
    ]
    write_text(out / EXPLICIT_VALUES_FILE, explicit_values_csv(explicit_values(*pairs)))
    written.append(out / EXPLICIT_VALUES_FILE)
    # csv_bytes releases the GIL: the files are formatted and written side by side
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        list(pool.map(lambda job: write_csv(*job), csvs))
    summary = dict(result["summary"])
    if extra_summary:
        summary.update(extra_summary)
    if watch is not None:
        # only the watched values that are published: a name in the list that the data holds
        # too rarely (or not at all) is never written, as the privacy rule wants
        shown = {
            *result["ai_values"].column("value").to_pylist(),
            *result["human_values"].column("value").to_pylist(),
        }
        names = dict.fromkeys(_core.normalize(w) for w in watch)
        summary["watch"] = [w for w in names if w in shown]
    write_json(out / "summary.json", summary)  # last: its presence means the rest is there
    written.append(out / "summary.json")
    return written
