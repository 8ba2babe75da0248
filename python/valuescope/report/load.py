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
    "kind",
    "item",
    "human_value",
    "ai_value",
    "dominant_response_type",
    "pattern",
}

#: The paper's further analyses (model differences within tasks, value pairs, explicit values):
#: Engine.result() key -> file name. layout.RESULT_FILES names them where the engine writes them;
#: the names here only serve an analysis written before.
PAPER_FILES = {
    key: layout.RESULT_FILES.get(key, f"{key}.csv")
    for key in (
        "model_comparison_within_tasks",
        "value_pairs",
        "explicit_by_response_type",
        "explicit_values",
    )
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
    for c in header:
        if c.startswith("significant"):
            types[c] = pa.bool_()
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
    # None: the file is absent (an older analysis, or too little to compute); [] : empty
    within_tasks: list[dict[str, Any]] | None = None
    value_pairs: list[dict[str, Any]] = field(default_factory=list)
    has_value_pairs: bool = False
    explicit_by_response_type: list[dict[str, Any]] | None = None
    explicit_values: list[dict[str, Any]] | None = None
    # set by write_report: the watch list and values_to_watch.csv's rows
    watch: Any = None
    watch_rows: list[dict[str, Any]] = field(default_factory=list)
    tables: dict[str, CrossTable] = field(default_factory=dict)
    taxonomy: list[dict[str, Any]] | None = None
    taxonomy_meta: dict[str, Any] = field(default_factory=dict)  # taxonomy.json
    #: Where the taxonomy's files were looked for, in order (`--taxonomy` first when given).
    taxonomy_dirs: list[Path] = field(default_factory=list)
    reference: list[dict[str, Any]] | None = None
    # written by `valuescope validate` into the analysis directory (or its validate/ folder)
    validity: dict[str, Any] | None = None
    agreement: dict[str, Any] | None = None
    lint: dict[str, Any] | None = None
    privacy_audit: list[dict[str, Any]] | None = None

    def table(self, *names: str) -> CrossTable | None:
        """The first of `names` that the analysis has."""
        for n in names:
            if n in self.tables:
                return self.tables[n]
        return None


def load_analysis(
    path: str | Path, taxonomy: str | Path | None = None, features: str | Path | None = None
) -> Analysis:
    """The analysis in `path`. The taxonomy is read from `taxonomy` when given, else found
    beside the analysis or beside its input (the clustered features `valuescope taxonomy`
    wrote); `features` adds the extraction's model and summary when the analysis lacks them."""
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
    paper = {key: read_csv(d / name) for key, name in PAPER_FILES.items()}
    a.within_tasks = _rows_or_none(paper["model_comparison_within_tasks"])
    a.value_pairs = rows(paper["value_pairs"])
    a.has_value_pairs = paper["value_pairs"] is not None
    a.explicit_by_response_type = _rows_or_none(paper["explicit_by_response_type"])
    a.explicit_values = _rows_or_none(paper["explicit_values"])
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
    where = _taxonomy_dirs(d, a.summary, taxonomy)
    a.taxonomy_dirs = where
    tree = _taxonomy_csv(where, layout.TREE)
    a.taxonomy = None if tree is None else tree.to_pylist()
    meta = _taxonomy_path(where, layout.TAXONOMY_SUMMARY)
    if meta is not None:
        a.taxonomy_meta = read_json(meta)
    ref = _taxonomy_csv(where, layout.REFERENCE_COMPARISON)
    a.reference = None if ref is None else [_reference_row(r) for r in ref.to_pylist()]
    if features is not None:
        _add_extraction(a, Path(features))
    if "n_rows_without_user_id" not in a.summary:
        missing = rows_without_user_id([Path(p) for p in a.summary.get("inputs") or []])
        if missing is not None:
            a.summary["n_rows_without_user_id"] = missing
    _load_validity(a, d)
    return a


def _rows_or_none(table: pa.Table | None) -> list[dict[str, Any]] | None:
    return None if table is None else table.to_pylist()


def _load_validity(a: Analysis, d: Path) -> None:
    """What `valuescope validate` wrote into the analysis directory (or its validate/)."""
    for folder in (d / layout.VALIDATE_DIR, d):
        for attr, name in (
            ("validity", layout.VALIDITY),
            ("agreement", layout.AGREEMENT),
            ("lint", layout.LINT),
        ):
            if getattr(a, attr) is None and (folder / name).is_file():
                setattr(a, attr, read_json(folder / name))
        if a.privacy_audit is None:
            audit = read_csv(folder / layout.PRIVACY_AUDIT)
            if audit is not None:
                a.privacy_audit = audit.to_pylist()


def rows_without_user_id(files: list[Path]) -> int | None:
    """Rows of the analysed feature files with no user id, from their Parquet footers' null
    counts (no row is read); None when a file has moved or its footer does not say."""
    import pyarrow.parquet as pq

    missing = 0
    for f in files:
        try:
            md = pq.ParquetFile(f).metadata
        except (OSError, pa.ArrowException):
            return None
        names = md.schema.names
        if "user_id" not in names:
            missing += md.num_rows
            continue
        col = names.index("user_id")
        for g in range(md.num_row_groups):
            stats = md.row_group(g).column(col).statistics
            if stats is None or not stats.has_null_count:
                return None
            missing += stats.null_count
    return missing if files else None


def _taxonomy_dirs(d: Path, summary: dict[str, Any], given: str | Path | None) -> list[Path]:
    if given is not None:
        g = Path(given)
        if not (g / layout.TREE).is_file() and not (g / layout.TAXONOMY_SUMMARY).is_file():
            raise UserError(f"{g}: not a taxonomy directory (no {layout.TREE})")
        return [g]
    dirs = [d / layout.TAXONOMY_DIR, d]
    for inp in summary.get("inputs") or []:  # analysed the taxonomy's clustered features
        p = Path(inp)
        if p.name == layout.CLUSTERED_FEATURES:
            dirs.append(p.parent if p.is_absolute() else (Path.cwd() / p).parent)
    return dirs


def _taxonomy_path(dirs: list[Path], name: str) -> Path | None:
    for folder in dirs:
        if (folder / name).is_file():
            return folder / name
    return None


def _taxonomy_csv(dirs: list[Path], name: str) -> pa.Table | None:
    path = _taxonomy_path(dirs, name)
    return None if path is None else read_csv(path)


def _add_extraction(a: Analysis, features: Path) -> None:
    """The extraction's model, prompt version and summary from a features file (its provenance
    columns and the summary beside it): counts and names only, no value is read."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from valuescope.extraction_summary import merge_summaries

    if not features.is_file():
        raise UserError(f"{features}: no such features file")
    ext = dict(merge_summaries([features]))
    try:
        names = pq.read_schema(features).names
        for col, key in (("extraction_model", "model"), ("prompt_version", "prompt_version")):
            if col in names:
                found = pc.unique(pq.read_table(features, columns=[col])[col]).to_pylist()
                ext[key] = ", ".join(sorted(v for v in found if v)) or ext.get(key)
    except (OSError, pa.ArrowException) as exc:
        raise _damaged(features, exc) from None
    a.summary["extraction"] = {**ext, **(a.summary.get("extraction") or {})}


def _reference_row(r: dict[str, Any]) -> dict[str, Any]:
    """`valuescope taxonomy --reference` writes published_pct / user_pct; the report's names are
    pct_reference / pct_observed (either spelling is read)."""
    r.setdefault("pct_reference", r.get("published_pct"))
    r.setdefault("pct_observed", r.get("user_pct"))
    return r
