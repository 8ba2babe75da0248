"""Values to watch: chosen values (by default, ones the paper flags as signs of jailbreak
attempts) with the tasks, response types and values they are significantly associated with.

Only published figures are read: a watched value that was suppressed, or never seen, is simply
not listed, and the two cases look the same, so the list says nothing about rare values.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from valuescope._core import normalize

#: (side of the watched value, table, which end of the table it is on, context named)
CONTEXTS: tuple[tuple[str, str, str, str], ...] = (
    ("ai", "ai_values__task_cluster", "row", "task_cluster"),
    ("ai", "ai_values__task", "row", "task"),
    ("ai", "ai_values__response_type", "row", "response_type"),
    ("ai", "human_values__ai_values", "col", "human_values"),
    ("human", "human_values__response_type", "row", "response_type"),
    ("human", "human_values__ai_values", "row", "ai_values"),
)

COLUMNS = (
    "watched_value",
    "side",
    "n_conversations",
    "context",
    "category",
    "observed",
    "adjusted_residual",
)


def values_to_watch(
    watch: Iterable[str],
    ai_values: Mapping[str, int],
    human_values: Mapping[str, int],
    tables: Mapping[str, pa.Table],
) -> list[dict[str, Any]]:
    """The significant associations (positive adjusted residual above the table's threshold)
    of every watched value that was published, strongest first within each value and context.
    `ai_values`, `human_values`: published conversations per value; `tables` maps a table's
    name (`ai_values__task_cluster`, ...) to its published cells."""
    wanted = list(dict.fromkeys(normalize(w) for w in watch if normalize(w)))
    sides = {"ai": ai_values, "human": human_values}
    # the raw-task table stands in only where there are no clusters, as in the report
    contexts = [
        c for c in CONTEXTS if c[1] != "ai_values__task" or "ai_values__task_cluster" not in tables
    ]
    rows: list[dict[str, Any]] = []
    # each table is filtered once, for every watched value together
    hits: dict[tuple[str, str], list[dict[str, Any]]] = {}
    keys = pa.array(wanted, pa.string())
    for side, name, end, context in contexts:
        cells = tables.get(name)
        if cells is None or cells.num_rows == 0:
            continue
        other = "col" if end == "row" else "row"
        sig = pc.and_(
            pc.and_(
                pc.is_in(cells[end], value_set=keys), pc.fill_null(cells["significant"], False)
            ),
            pc.greater(cells["adjusted_residual"], 0),
        )
        for r in cells.filter(sig).to_pylist():
            hits.setdefault((r[end], side), []).append(
                {
                    "context": context,
                    "category": r[other],
                    "observed": r["observed"],
                    "adjusted_residual": r["adjusted_residual"],
                }
            )
    for value in wanted:
        for side in ("ai", "human"):
            n = sides[side].get(value)
            if n is None:
                continue
            found = hits.get((value, side), [])
            order = [c[3] for c in contexts]
            found.sort(key=lambda h: (order.index(h["context"]), -h["adjusted_residual"]))
            base = {"watched_value": value, "side": side, "n_conversations": n}
            # published with no significant association: listed once, with no context
            rows.extend({**base, **h} for h in found) if found else rows.append(base)
    return rows


def watch_csv(rows: Iterable[Mapping[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in rows:
        w.writerow(["" if r.get(c) is None else r[c] for c in COLUMNS])
    return buf.getvalue()
