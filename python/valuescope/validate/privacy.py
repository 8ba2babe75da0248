"""``validate privacy``: Clio's privacy auditor over every published string that came from free
text (values, task clusters, value-cluster names and descriptions), rated 1-5 by an LLM through
the extraction's runner (1: identifies someone; 5: nothing identifying), written to
``privacy_audit.csv``. ``--redact-below K`` replaces every string rated below K, in the analysis
files and the report, with a neutral label and re-renders the report.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from valuescope import layout
from valuescope.errors import UserError
from valuescope.extract.answer import AnswerError

#: (file under the analysis directory, column) holding strings that came from free text.
_TREE_IN = (layout.TREE, f"{layout.TAXONOMY_DIR}/{layout.TREE}")
SOURCES = (
    (layout.RESULT_FILES["ai_values"], "value"),
    (layout.RESULT_FILES["human_values"], "value"),
    (layout.RESULT_FILES["ai_values_explicit"], "value"),
    (layout.RESULT_FILES["invariance"], "value"),
    *((tree, column) for tree in _TREE_IN for column in ("name", "description")),
    (f"{layout.TAXONOMY_DIR}/{layout.REFERENCE_MAPPING}", "value"),
)
#: Feature columns whose categories are free text; a co-occurrence table over one of them
#: publishes its strings in the table's row or col column.
FREE_TEXT = ("ai_values", "human_values", "ai_values_explicit", "task", "task_cluster")
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"rating": {"type": "integer", "minimum": 1, "maximum": 5}},
    "required": ["rating"],
    "additionalProperties": False,
}
LABEL = "[withheld by the privacy audit {n}]"
AUDIT_COLUMNS = ("string", "sources", "rating", "error")


def validate_rating(obj: Any) -> int:
    if isinstance(obj, dict):
        obj = obj.get("rating")
    if isinstance(obj, str) and obj.strip().isdigit():
        obj = int(obj.strip())
    if isinstance(obj, bool) or not isinstance(obj, int) or not 1 <= obj <= 5:
        raise AnswerError('the answer must be {"rating": N} with N an integer from 1 to 5')
    return obj


def _free_text(column: str) -> bool:
    return column in FREE_TEXT or column.startswith("ai_values_l")


def published_strings(analysis: Path) -> dict[str, list[str]]:
    """Every free-text string the analysis directory publishes -> where it appears."""
    found: dict[str, list[str]] = {}

    def add(s: str | None, where: str) -> None:
        if s and s.strip():
            found.setdefault(s, [])
            if where not in found[s]:
                found[s].append(where)

    sources = list(SOURCES)
    for meta in sorted((analysis / layout.TABLES_DIR).glob("*.json")):
        try:
            test = json.loads(meta.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        rel = f"{layout.TABLES_DIR}/{meta.stem}.csv"
        row_col, _, col_col = meta.stem.partition("__")
        if _free_text(test.get("row_column") or row_col):
            sources.append((rel, "row"))
        if _free_text(test.get("col_column") or col_col):
            sources.append((rel, "col"))
    for rel, column in sources:
        path = analysis / rel
        if not path.is_file():
            continue
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if column not in (reader.fieldnames or ()):
                continue
            for row in reader:
                add(row[column], f"{rel}:{column}")
    return found


def audit(
    analysis: Path, opts: Any, cache_dir: str | None = None
) -> tuple[list[dict[str, Any]], Any]:
    if not (analysis / layout.SUMMARY).is_file():
        raise UserError(f"{analysis}: not an analysis directory (no summary.json)")
    strings = published_strings(analysis)
    # The cache holds the strings rated, identifying ones too: kept beside the analysis
    # directory, never in it (its files are what gets published).
    cache = cache_dir or str(analysis.resolve().parent / layout.EXTRACT_CACHE_DIR)
    ratings, failures, summary = rate(list(strings), opts, cache)
    rows = [
        {
            "string": s,
            "sources": ";".join(strings[s]),
            "rating": ratings.get(s),
            "error": failures.get(s, ""),
        }
        for s in sorted(strings)
    ]
    return rows, summary


def rate(
    strings: list[str], opts: Any, cache_dir: str
) -> tuple[dict[str, int], dict[str, str], Any]:
    """Ratings 1-5 for ``strings`` (keyed by the string), failures by string, the summary."""
    from valuescope.extract.prompts import load_prompt
    from valuescope.extract.run import Task, run_tasks

    ids = {f"s{i}": s for i, s in enumerate(strings)}
    tasks = [Task(i, "privacy", f"<string>{s}</string>") for i, s in ids.items()]
    kinds = {"privacy": (load_prompt("privacy"), SCHEMA, validate_rating, 16)}
    results, failures, summary = run_tasks(
        opts, tasks, kinds, os.path.join(cache_dir, layout.PRIVACY_CACHE_DB)
    )
    return (
        {ids[i]: r for i, r in results.items()},
        {ids[i]: f for i, f in failures.items()},
        summary,
    )


def write_audit(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    from valuescope.atomic import atomic_open

    with atomic_open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.DictWriter(fh, AUDIT_COLUMNS, lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: "" if r[k] is None else r[k] for k in AUDIT_COLUMNS})


def redact(analysis: Path, failing: list[str]) -> dict[str, str]:
    """Replace each failing string with a neutral label in every CSV and JSON file of the
    analysis directory (whole cells and JSON strings; inside descriptions too); returns
    string -> label."""
    from valuescope.atomic import write_text

    labels = {s: LABEL.format(n=i + 1) for i, s in enumerate(sorted(failing))}
    if not labels:
        return labels
    longest_first = sorted(labels, key=len, reverse=True)

    def exact(text: str) -> str:
        return labels.get(text, text)

    def inside(text: str) -> str:
        # Free-text descriptions may quote a failing string (a cluster described by its members);
        # only there is it replaced inside a longer text, never in ids or numbers.
        text = exact(text)
        for s in longest_first:
            if len(s) >= 4 and s in text:
                text = text.replace(s, labels[s])
        return text

    for path in sorted(analysis.rglob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        if path.suffix == ".csv" and path.name != layout.PRIVACY_AUDIT:
            with open(path, newline="", encoding="utf-8") as fh:
                rows = list(csv.reader(fh))
            if not rows:
                continue
            free = {i for i, name in enumerate(rows[0]) if name == "description"}
            new = [rows[0]] + [
                [inside(c) if i in free else exact(c) for i, c in enumerate(r)] for r in rows[1:]
            ]
            if new != rows:
                from io import StringIO

                buf = StringIO()
                csv.writer(buf, lineterminator="\n").writerows(new)
                write_text(path, buf.getvalue())
        elif path.suffix == ".json":
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except ValueError:
                continue
            new_data = _walk(data, exact)
            if new_data != data:
                write_text(path, json.dumps(new_data, indent=2, ensure_ascii=False) + "\n")
    return labels


def _walk(x: Any, fix: Any) -> Any:
    if isinstance(x, str):
        return fix(x)
    if isinstance(x, list):
        return [_walk(v, fix) for v in x]
    if isinstance(x, dict):
        return {fix(k): _walk(v, fix) for k, v in x.items()}
    return x


def run_privacy(
    analysis: Path, opts: Any, redact_below: int | None = None, cache_dir: str | None = None
) -> tuple[list[dict[str, Any]], Any, dict[str, str]]:
    rows, summary = audit(analysis, opts, cache_dir)
    labels: dict[str, str] = {}
    if redact_below is not None:
        failing = [
            r["string"] for r in rows if r["rating"] is not None and r["rating"] < redact_below
        ]
        labels = redact(analysis, failing)
        for r in rows:
            if r["string"] in labels:
                r["string"] = labels[r["string"]]
                r["sources"] = "redacted"
        if (analysis / layout.REPORT_HTML).is_file() or (analysis / layout.REPORT_MD).is_file():
            from valuescope.report import write_report

            write_audit(analysis / layout.PRIVACY_AUDIT, rows)
            write_report(analysis)
    write_audit(analysis / layout.PRIVACY_AUDIT, rows)
    return rows, summary, labels


def auditor_accuracy(
    labelled: list[tuple[str, bool]], opts: Any, cache_dir: str, threshold: int = 3
) -> dict[str, Any]:
    """The auditor's own accuracy on strings labelled identifying (True) or not: a rating below
    ``threshold`` counts as "identifying". Unrated strings (failed calls) count as wrong."""
    ratings, failures, summary = rate([s for s, _ in labelled], opts, cache_dir)
    correct = 0
    confusion = {
        "identifying": {"flagged": 0, "passed": 0, "failed": 0},
        "generic": {"flagged": 0, "passed": 0, "failed": 0},
    }
    for s, identifying in labelled:
        r = ratings.get(s)
        row = confusion["identifying" if identifying else "generic"]
        if r is None:
            row["failed"] += 1
            continue
        flagged = r < threshold
        row["flagged" if flagged else "passed"] += 1
        correct += flagged == identifying
    return {
        "n": len(labelled),
        "accuracy": correct / len(labelled) if labelled else None,
        "confusion": confusion,
        "failed": len(failures),
        "summary": summary.line(),
    }
