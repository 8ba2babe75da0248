"""Where each stage puts its files: the names every writer and every reader (the report, the demo's
summary, `run`) use, so that a file is never written under one name and looked for under another.

A run directory (`valuescope run`, `valuescope demo`) holds the features and the analysis; the
analysis directory holds the statistics, the taxonomy below it, and the report::

    RUN/features.parquet
    RUN/analysis/summary.json, ai_values.csv, ..., rejects.csv, report.html, report.md
    RUN/analysis/tables/<A>__<B>.csv and .json
    RUN/analysis/taxonomy/values_tree.csv, taxonomy.json, features_clustered.parquet, ...
"""

from __future__ import annotations

from pathlib import Path

# -- a run directory ------------------------------------------------------------------------------

#: Where `valuescope analyze` writes, and `valuescope report` reads, when no directory is given.
DEFAULT_ANALYSIS_OUT = "valuescope-analysis"

#: The features that extraction (or synthesis) writes.
FEATURES = "features.parquet"
#: The analysis directory inside a run directory.
ANALYSIS_DIR = "analysis"

# -- an analysis directory (valuescope analyze) ---------------------------------------------------

#: Written last: its presence means every other analysis file is there.
SUMMARY = "summary.json"
#: Every row that broke the schema, with its file, row and reason.
REJECTS = "rejects.csv"
#: Engine.result() key -> file name, in the order they are written.
RESULT_FILES = {
    "ai_values": "ai_values.csv",
    "human_values": "human_values.csv",
    "ai_values_explicit": "ai_values_explicit.csv",
    "response_types": "response_types.csv",
    "mirroring": "mirroring.csv",
    "invariance": "invariance.csv",
    "models": "models.csv",
    "model_comparison": "model_comparison.csv",
    "table_tests": "table_tests.csv",
    #: written only when the features have more than one published model and a task cluster
    #: (or task) column with data
    "model_comparison_within_tasks": "model_comparison_within_tasks.csv",
    "value_pairs": "value_pairs.csv",
    "explicit_by_response_type": "explicit_by_response_type.csv",
    "explicit_values": "explicit_values.csv",
}
#: One CSV (cells) and one JSON (the table's test) per co-occurrence table.
TABLES_DIR = "tables"
#: `analyze --checkpoint-every`: the state and position of an unfinished run.
CHECKPOINT_DIR = ".valuescope-checkpoint"


def table_csv(out: Path, name: str) -> Path:
    return out / TABLES_DIR / f"{name}.csv"


def table_json(out: Path, name: str) -> Path:
    return out / TABLES_DIR / f"{name}.json"


# -- the taxonomy (valuescope taxonomy; ANALYSIS_DIR/taxonomy in a run) ---------------------------

TAXONOMY_DIR = "taxonomy"
TREE = "values_tree.csv"
#: The features with task clusters and value-cluster columns added: the analysis's input.
CLUSTERED_FEATURES = "features_clustered.parquet"
REFERENCE_COMPARISON = "reference_comparison.csv"
REFERENCE_MAPPING = "reference_mapping.csv"
TAXONOMY_SUMMARY = "taxonomy.json"
#: Schwartz's and Rokeach's values placed on the tree (`taxonomy --frameworks`)
FRAMEWORK_MAPPING = "framework_mapping.csv"


def taxonomy_file(analysis: Path, name: str) -> Path | None:
    """A taxonomy file of an analysis directory: in its taxonomy/ folder (where `run`, `demo` and
    `taxonomy --out ANALYSIS_DIR/taxonomy` put it), or at its top (an analysis directory that is
    also the taxonomy's output); None when neither has it."""
    for path in (analysis / TAXONOMY_DIR / name, analysis / name):
        if path.is_file():
            return path
    return None


# -- the report (valuescope report) ---------------------------------------------------------------

REPORT_HTML = "report.html"
REPORT_MD = "report.md"
#: `report --watch`: each watched value's significant tasks, response types and value pairs
#: (from the published tables only), in the analysis directory.
VALUES_TO_WATCH = "values_to_watch.csv"

# -- valuescope diff A B --out DIR ---------------------------------------------------------------

DIFF_CSV = "diff.csv"
DIFF_HTML = "diff.html"
DIFF_MD = "diff.md"

# -- extraction ----------------------------------------------------------------------------------

#: The answer cache, beside the features unless --cache says otherwise.
EXTRACT_CACHE_DIR = ".valuescope-cache"
EXTRACT_CACHE_DB = "extract.sqlite3"
#: Appended to the features path for the rejects file's default name.
EXTRACT_REJECTS_SUFFIX = ".rejects.jsonl"
#: Beside the features: the extraction's counts and reject reasons, which `analyze` carries into
#: its summary.json for the report (the reject share says how far to trust the figures).
EXTRACT_SUMMARY_SUFFIX = ".summary.json"


# -- validity (valuescope validate; read by the report from ANALYSIS_DIR or its validate/) --------

VALIDATE_DIR = "validate"
#: validate lint --out
LINT = "lint.json"
#: validate score --out
VALIDITY = "validity.json"
#: validate compare --out DIR: run-to-run agreement, and the values that change most
AGREEMENT = "agreement.json"
LEAST_STABLE_VALUES = "least_stable_values.csv"
#: validate privacy: one rating per published free-text string
PRIVACY_AUDIT = "privacy_audit.csv"
#: A review packet (validate sample --out DIR)
REVIEW_PAGE = "review.html"
REVIEW_ITEMS = "items.jsonl"
REVIEW_PACKET = "packet.json"
#: The answer caches of validate's LLM tasks, in the extraction's cache directory
JUDGE_CACHE_DB = "judge.sqlite3"
PRIVACY_CACHE_DB = "privacy.sqlite3"
