"""Reading an analysis directory (the output of `valuescope analyze`) for the report.

Only the published, already privacy-suppressed files are read; the features file never is. Every
file is optional: a section whose input is missing says so instead of failing, so a report can be
written for a partial or older analysis.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv

from valuescope import layout
from valuescope.errors import UserError

# Columns that hold names (values, models, clusters): always strings, never null, never inferred.
# Without this, pyarrow would turn a value called "null" or "true" into a null or a bool.
STRING_COLUMNS = {
    "value",
    "response_type",
    "model",
    "context",
    "feature",
    "model_a",
    "model_b",
    "table",
    "row_column",
    "col_column",
    "row",
    "col",
    "cluster_id",
    "description",
    "name",
    "parent_cluster_id",
}


def _damaged(path: Path, exc: Exception) -> UserError:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return UserError(f"{path}: damaged analysis file ({first[:160]})")


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _damaged(path, exc) from None


def read_csv(path: Path, columns: list[str] | None = None) -> pa.Table | None:
    """A CSV as a pyarrow Table (empty numeric cells as nulls), or None when the file is absent.
    `columns`: read only these (the large tables' `expected` column is never shown). A file that
    cannot be parsed (cut short, wrong columns) is a UserError naming it."""
    if not path.is_file():
        return None
    try:
        return _read_csv(path, columns)
    except (UnicodeDecodeError, pa.ArrowException) as exc:
        raise _damaged(path, exc) from None


def _read_csv(path: Path, columns: list[str] | None) -> pa.Table:
    with path.open("rb") as fh:
        header = [c.strip('"') for c in fh.readline().decode("utf-8").strip().split(",")]
    types = {c: pa.string() for c in header if c in STRING_COLUMNS}
    if "significant" in header:
        types["significant"] = pa.bool_()
    convert = pacsv.ConvertOptions(
        column_types=types,
        null_values=[""],
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
        true_values=["true"],
        false_values=["false"],
        include_columns=[c for c in columns if c in header] if columns else None,
    )
    return pacsv.read_csv(path, convert_options=convert)


def rows(table: pa.Table | None) -> list[dict[str, Any]]:
    return [] if table is None else table.to_pylist()


CELL_COLUMNS = ["row", "col", "observed", "adjusted_residual", "significant"]


@dataclass
class CrossTable:
    """One co-occurrence table: its test (chi-square, threshold, test count) and its cells, read
    on first use: at scale a table has millions of cells and most tables are only summarised."""

    name: str
    row_column: str
    col_column: str
    path: Path
    test: dict[str, Any]
    _cells: pa.Table | None = None

    @property
    def cells(self) -> pa.Table:
        if self._cells is None:
            self._cells = read_csv(self.path, CELL_COLUMNS)
            assert self._cells is not None
        return self._cells


@dataclass
class Analysis:
    path: Path
    summary: dict[str, Any]
    ai_values: list[dict[str, Any]] = field(default_factory=list)
    human_values: list[dict[str, Any]] = field(default_factory=list)
    ai_values_explicit: list[dict[str, Any]] = field(default_factory=list)
    response_types: list[dict[str, Any]] = field(default_factory=list)
    mirroring: list[dict[str, Any]] = field(default_factory=list)
    invariance: list[dict[str, Any]] = field(default_factory=list)
    models: list[dict[str, Any]] = field(default_factory=list)
    model_comparison: pa.Table | None = None
    table_tests: list[dict[str, Any]] = field(default_factory=list)
    tables: dict[str, CrossTable] = field(default_factory=dict)
    taxonomy: list[dict[str, Any]] | None = None
    taxonomy_meta: dict[str, Any] = field(default_factory=dict)  # taxonomy.json
    reference: list[dict[str, Any]] | None = None

    def table(self, *names: str) -> CrossTable | None:
        """The first of `names` that the analysis has."""
        for n in names:
            if n in self.tables:
                return self.tables[n]
        return None


def load_analysis(path: str | Path) -> Analysis:
    d = Path(path)
    summary_path = d / layout.SUMMARY
    if not summary_path.is_file():
        raise FileNotFoundError(f"{summary_path}: not an analysis directory (no {layout.SUMMARY})")
    files = {key: d / name for key, name in layout.RESULT_FILES.items()}
    a = Analysis(path=d, summary=read_json(summary_path))
    a.ai_values = rows(read_csv(files["ai_values"]))
    a.human_values = rows(read_csv(files["human_values"]))
    a.ai_values_explicit = rows(read_csv(files["ai_values_explicit"]))
    a.response_types = rows(read_csv(files["response_types"]))
    a.mirroring = rows(read_csv(files["mirroring"]))
    a.invariance = rows(read_csv(files["invariance"]))
    a.models = rows(read_csv(files["models"]))
    a.model_comparison = read_csv(files["model_comparison"])
    a.table_tests = rows(read_csv(files["table_tests"]))
    for meta_path in sorted((d / layout.TABLES_DIR).glob("*.json")):
        cells = meta_path.with_suffix(".csv")
        if not cells.is_file():
            continue
        test = read_json(meta_path)
        name = meta_path.stem
        row_col, _, col_col = name.partition("__")
        a.tables[name] = CrossTable(
            name=name,
            row_column=test.get("row_column") or row_col,
            col_column=test.get("col_column") or col_col,
            path=cells,
            test=test,
        )
    tree = _taxonomy_csv(d, layout.TREE)
    a.taxonomy = None if tree is None else tree.to_pylist()
    meta = layout.taxonomy_file(d, layout.TAXONOMY_SUMMARY)
    if meta is not None:
        a.taxonomy_meta = read_json(meta)
    ref = _taxonomy_csv(d, layout.REFERENCE_COMPARISON)
    a.reference = None if ref is None else [_reference_row(r) for r in ref.to_pylist()]
    return a


def _taxonomy_csv(d: Path, name: str) -> pa.Table | None:
    path = layout.taxonomy_file(d, name)
    return None if path is None else read_csv(path)


def _reference_row(r: dict[str, Any]) -> dict[str, Any]:
    """`valuescope taxonomy --reference` writes published_pct / user_pct; the report's names are
    pct_reference / pct_observed (either spelling is read)."""
    r.setdefault("pct_reference", r.get("published_pct"))
    r.setdefault("pct_observed", r.get("user_pct"))
    return r
