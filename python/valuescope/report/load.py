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
    "verdict",
    "human_value",
    "ai_value",
    "class",
    "watched_value",
    "side",
    "category",
    "framework",
    "framework_value",
    "cluster",
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
    for flag in ("significant", "significant_raw", "significant_within_tasks"):
        if flag in header:
            types[flag] = pa.bool_()
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
    model_within: pa.Table | None = None  # model_comparison_within_tasks.csv
    explicit_by_response_type: list[dict[str, Any]] = field(default_factory=list)
    explicit_values: list[dict[str, Any]] = field(default_factory=list)
    value_pairs: pa.Table | None = None
    watch: list[dict[str, Any]] | None = None  # computed by write_report
    frameworks: list[dict[str, Any]] | None = None  # framework_mapping.csv (taxonomy)
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
    summary_path = d / "summary.json"
    if not summary_path.is_file():
        raise FileNotFoundError(f"{summary_path}: not an analysis directory (no summary.json)")
    a = Analysis(path=d, summary=read_json(summary_path))
    a.ai_values = rows(read_csv(d / "ai_values.csv"))
    a.human_values = rows(read_csv(d / "human_values.csv"))
    a.ai_values_explicit = rows(read_csv(d / "ai_values_explicit.csv"))
    a.response_types = rows(read_csv(d / "response_types.csv"))
    a.mirroring = rows(read_csv(d / "mirroring.csv"))
    a.invariance = rows(read_csv(d / "invariance.csv"))
    a.models = rows(read_csv(d / "models.csv"))
    a.model_comparison = read_csv(d / "model_comparison.csv")
    a.model_within = read_csv(d / "model_comparison_within_tasks.csv")
    a.explicit_by_response_type = rows(read_csv(d / "explicit_by_response_type.csv"))
    a.explicit_values = rows(read_csv(d / "explicit_values.csv"))
    a.value_pairs = read_csv(d / "value_pairs.csv")
    a.table_tests = rows(read_csv(d / "table_tests.csv"))
    for meta_path in sorted((d / "tables").glob("*.json")):
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
    tree = _first(d, "values_tree.csv")
    a.taxonomy = None if tree is None else tree.to_pylist()
    for meta in (d / "taxonomy" / "taxonomy.json", d / "taxonomy.json"):
        if meta.is_file():
            a.taxonomy_meta = read_json(meta)
            break
    fw = _first(d, "framework_mapping.csv")
    a.frameworks = None if fw is None else fw.to_pylist()
    ref = _first(d, "reference_comparison.csv")
    a.reference = None if ref is None else [_reference_row(r) for r in ref.to_pylist()]
    return a


def _first(d: Path, name: str) -> pa.Table | None:
    """A taxonomy file: `valuescope taxonomy --out ANALYSIS_DIR/taxonomy` puts it there; an
    analysis directory that is also the taxonomy's output has it at the top."""
    for path in (d / "taxonomy" / name, d / name):
        t = read_csv(path)
        if t is not None:
            return t
    return None


def _reference_row(r: dict[str, Any]) -> dict[str, Any]:
    """`valuescope taxonomy --reference` writes published_pct / user_pct; the report's names are
    pct_reference / pct_observed (either spelling is read)."""
    r.setdefault("pct_reference", r.get("published_pct"))
    r.setdefault("pct_observed", r.get("user_pct"))
    return r
