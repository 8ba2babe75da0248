"""Values to watch (`valuescope report --watch FILE`): chosen values, and where they stand out.

The paper used such a list to find attempts to get around the model's rules: a rare value like
"dominance" that concentrates in a few tasks or in resisted conversations points at them. For each
watched value that the analysis published (as an AI or a human value), this lists its significant
tasks and response types (positive adjusted residual above the table's threshold) and the value
pairs it belongs to. Only published files are read, so nothing below the privacy thresholds can
appear; a watched value that is not published is named as such, never with a count.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from valuescope import layout
from valuescope._core import normalize
from valuescope.atomic import write_text
from valuescope.errors import UserError
from valuescope.report.load import Analysis

NOT_PUBLISHED = "not published (below the thresholds or absent)"
COLUMNS = ["value", "status", "side", "context", "category", "n_conversations", "residual"]
#: (side, context, the tables to read, first found): tasks may be clustered or raw.
SOURCES = (
    ("AI value", "task cluster", ("ai_values__task_cluster", "ai_values__task")),
    ("AI value", "response type", ("ai_values__response_type",)),
    ("human value", "task cluster", ("human_values__task_cluster", "human_values__task")),
    ("human value", "response type", ("human_values__response_type",)),
)


@dataclass
class WatchList:
    values: list[str]
    source: str  # the file given, or "the default list"


def default_watch_text() -> str:
    return resources.files("valuescope").joinpath("data/values_to_watch.txt").read_text("utf-8")


def read_watch_list(path: str | Path | None = None) -> WatchList:
    """One value per line (normalised like the analysis's values); blank lines and lines
    starting with # are skipped. None: the default list shipped with the package."""
    if path is None:
        text, source = default_watch_text(), "the default list"
    else:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"{p}: cannot read the watch list ({type(exc).__name__})") from None
        source = p.name
    values: list[str] = []
    for line in text.splitlines():
        v = normalize(line)
        if v and not v.startswith("#") and v not in values:
            values.append(v)
    return WatchList(values, source)


def watch_rows(a: Analysis, watch: WatchList) -> list[dict[str, Any]]:
    """The rows of values_to_watch.csv: per published watched value, one row per significant
    context (or one row saying it has none); per unpublished one, one row without counts."""
    ai = {r["value"] for r in a.ai_values}
    human = {r["value"] for r in a.human_values}
    wanted = pa.array(watch.values, pa.string())
    cells: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for side, _, names in SOURCES:
        t = a.table(*names)
        if t is None:
            continue
        c = t.cells
        keep = pc.and_(
            pc.is_in(c["row"], value_set=wanted),
            pc.and_(pc.fill_null(c["significant"], False), pc.greater(c["adjusted_residual"], 0)),
        )
        context = t.col_column.replace("_", " ")
        for r in c.filter(keep).to_pylist():
            cells.setdefault((r["row"], side), []).append(
                {
                    "context": context,
                    "category": r["col"],
                    "n_conversations": r["observed"],
                    "residual": r["adjusted_residual"],
                }
            )
    pairs = [
        p
        for p in a.value_pairs
        if p["human_value"] in watch.values or p["ai_value"] in watch.values
    ]
    out: list[dict[str, Any]] = []
    for v in watch.values:
        sides = [
            s for s, published in (("AI value", v in ai), ("human value", v in human)) if published
        ]
        if not sides:
            out.append({"value": v, "status": NOT_PUBLISHED})
            continue
        for side in sides:
            found = sorted(cells.get((v, side), []), key=lambda r: -r["residual"])
            for p in pairs:
                other = p["ai_value"] if side == "human value" else p["human_value"]
                if (p["human_value"] if side == "human value" else p["ai_value"]) != v:
                    continue
                found.append(
                    {
                        "context": "paired "
                        + ("AI value" if side == "human value" else "human value")
                        + f" ({p.get('pattern') or 'pair'})",
                        "category": other,
                        "n_conversations": p.get("n_conversations"),
                        "residual": p.get("residual"),
                    }
                )
            base = {"value": v, "status": "published", "side": side}
            out += [{**base, **f} for f in found] or [base]
    return out


def write_watch(a: Analysis, watch: WatchList) -> tuple[Path, list[dict[str, Any]]]:
    rows = watch_rows(a, watch)
    buf = io.StringIO()
    w = csv.DictWriter(buf, COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: "" if r.get(k) is None else r.get(k) for k in COLUMNS})
    path = a.path / layout.VALUES_TO_WATCH
    write_text(path, buf.getvalue())
    return path, rows
