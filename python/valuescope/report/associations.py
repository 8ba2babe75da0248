"""The Associations section: the AI values most over-represented per task cluster and per human
value (adjusted residuals above the Bonferroni threshold), and a heat map of the strongest cells."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from valuescope.report import figures as fg
from valuescope.report import text as tx
from valuescope.report.load import Analysis, CrossTable
from valuescope.report.model import (
    HEAT_COLS,
    HEAT_ROWS,
    PANELS,
    PER_PANEL,
    TOP,
    Section,
    Table,
    new_section,
    not_computed,
)
from valuescope.schema import DEFAULT_ALPHA

# -- associations --------------------------------------------------------------------------------


def _top_cells(
    t: CrossTable, group_col: str, groups: Sequence[str], k: int, skip_self: bool = False
) -> dict[str, list[tuple[str, float]]]:
    """For each group (a column or row label), the k cells with the largest significant
    positive residuals; pyarrow does the filtering so large tables stay fast."""
    c = t.cells
    item_col = "row" if group_col == "col" else "col"
    mask = pc.and_(c["significant"], pc.greater(c["adjusted_residual"], pa.scalar(0.0)))
    mask = pc.and_(mask, pc.is_in(c[group_col], value_set=pa.array(list(groups), pa.string())))
    sig = c.filter(mask).sort_by([("adjusted_residual", "descending")])
    out: dict[str, list[tuple[str, float]]] = {g: [] for g in groups}
    for g, item, r in zip(
        sig[group_col].to_pylist(),
        sig[item_col].to_pylist(),
        sig["adjusted_residual"].to_pylist(),
        strict=True,
    ):
        if len(out[g]) < k and not (skip_self and item == g):
            out[g].append((item, r))
    return out


def _np(arr: pa.Array) -> np.ndarray:
    """A null-free primitive Arrow array as a numpy view of its buffer. (Array.to_numpy would
    import pandas through pyarrow's compatibility layer: most of a second at start-up.)"""
    assert arr.null_count == 0
    dtype = np.dtype(arr.type.to_pandas_dtype())
    return np.frombuffer(arr.buffers()[1], dtype=dtype, count=len(arr) + arr.offset)[arr.offset :]


def _largest_groups(t: CrossTable, col: str, limit: int) -> list[str]:
    """The labels of `col` with the most co-occurrences among the reported cells. A bincount, not
    Table.group_by: that would import pyarrow.acero and with it pandas (a second at start-up)."""
    enc = pc.dictionary_encode(t.cells[col]).combine_chunks()
    if not len(enc):
        return []
    observed = pc.cast(t.cells["observed"], pa.float64()).combine_chunks()
    sums = np.bincount(_np(enc.indices), weights=_np(observed), minlength=len(enc.dictionary))
    return [enc.dictionary[int(i)].as_py() for i in np.argsort(-sums, kind="stable")[:limit]]


def _panels(
    top: dict[str, list[tuple[str, float]]], color: str
) -> list[tuple[str, list[str], list[float], str]]:
    return [
        (g, [v for v, _ in cells], [r for _, r in cells], color)
        for g, cells in top.items()
        if cells
    ][:PANELS]


def _heat(t: CrossTable) -> tuple[list[str], list[str], list[list[float | None]], list[list[bool]]]:
    """The strongest cells: rows and columns met first in order of |residual|, then the matrix."""
    c = t.cells.filter(pc.is_valid(t.cells["adjusted_residual"]))
    c = c.append_column("abs", pc.abs(c["adjusted_residual"]))
    k = min(2000, c.num_rows)  # a top-k, not a sort of millions of cells
    head = pc.take(c, pc.select_k_unstable(c, k, [("abs", "descending")])) if k else c
    head = head.sort_by([("abs", "descending")])
    rows: list[str] = []
    cols: list[str] = []
    for r, col in zip(head["row"].to_pylist(), head["col"].to_pylist(), strict=True):
        if r not in rows and len(rows) < HEAT_ROWS:
            rows.append(r)
        if col not in cols and len(cols) < HEAT_COLS:
            cols.append(col)
        if len(rows) >= HEAT_ROWS and len(cols) >= HEAT_COLS:
            break
    sub = c.filter(
        pc.and_(
            pc.is_in(c["row"], value_set=pa.array(rows, pa.string())),
            pc.is_in(c["col"], value_set=pa.array(cols, pa.string())),
        )
    ).to_pylist()
    cell = {(x["row"], x["col"]): x for x in sub}
    m = [[(cell.get((r, col)) or {}).get("adjusted_residual") for col in cols] for r in rows]
    sig = [[bool((cell.get((r, col)) or {}).get("significant")) for col in cols] for r in rows]
    return rows, cols, m, sig


def associations(a: Analysis) -> Section:
    s = new_section("associations")
    alpha = a.summary.get("thresholds", {}).get("alpha", DEFAULT_ALPHA)
    task = a.table("ai_values__task_cluster", "ai_values__task")
    hv = a.table("human_values__ai_values")
    if task is None and hv is None:
        return not_computed(s, "the analysis has no ai_values x task or human x AI value table.")
    if task is not None and task.cells.num_rows:
        groups = _largest_groups(task, "col", 1000)  # panels: the first six with a finding
        panels = _panels(_top_cells(task, "col", groups, PER_PANEL), fg.AI)
        ctx = task.col_column.replace("_", " ")
        s.para(
            f"AI values by {ctx}: "
            + (
                " ".join(
                    f"In {g!r} the AI stands out for {tx.listing(labels, 3)}."
                    for g, labels, _, _ in panels[:3]
                )
                if panels
                else "no AI value is significantly over-represented in any of the largest groups."
            )
        )
        s.para(tx.significance(task.test, alpha))
        if panels:
            s.figure(
                fg.barh_panels(
                    panels, xlabel="adjusted residual", fmt="{:.1f}", ncols=3, col_width=3.4
                ),
                f"For the largest {ctx}s, the AI values most over-represented there "
                "(largest significant adjusted residuals).",
            )
    if hv is not None and hv.cells.num_rows:
        order = [r["value"] for r in a.human_values]
        present = set(pc.unique(hv.cells["row"]).to_pylist())
        groups = [v for v in order if v in present]
        # the value itself (the AI echoing it) is left out here: the Mirroring section covers it
        panels = _panels(_top_cells(hv, "row", groups, PER_PANEL, skip_self=True), fg.HUMAN)
        s.para(
            "When the user states a value, the AI's values shift: "
            + (
                " ".join(
                    f"with {g!r} the AI expresses {tx.listing(labels, 3)}."
                    for g, labels, _, _ in panels[:3]
                )
                if panels
                else "no significant association passed the threshold."
            )
        )
        s.para(tx.significance(hv.test, alpha))
        if panels:
            s.figure(
                fg.barh_panels(
                    panels, xlabel="adjusted residual", fmt="{:.1f}", ncols=3, col_width=3.4
                ),
                "For the most frequent human values, the other AI values that co-occur with "
                "them far more than chance (largest significant adjusted residuals; the AI "
                "echoing the same value is shown under Mirroring).",
            )
    for heat_src in (task, hv):
        if heat_src is None or not heat_src.cells.num_rows:
            continue
        rows, cols, m, sig = _heat(heat_src)
        if not rows or not cols:
            continue  # one row or one column (a single task cluster): no residual is defined
        s.figure(
            fg.heatmap(
                rows,
                cols,
                m,
                sig,
                xlabel=heat_src.col_column.replace("_", " "),
                ylabel=heat_src.row_column.replace("_", " "),
                threshold=float(heat_src.test.get("threshold") or 0),
            ),
            f"The strongest cells of {heat_src.name}: adjusted residuals (red: more often "
            "than expected, blue: less; grey: not reported; colours log-scaled beyond the "
            "threshold when residuals run into the hundreds).",
        )
        break
    s.table(
        Table(
            "Chi-square tests of every table",
            ["table", "chi-square", "dof", "p", "n", "threshold", "tests (m)", "cells", "reported"],
            [
                [
                    r["table"],
                    tx.dec(r.get("chi2"), 1),
                    tx.num(r.get("dof")),
                    tx.pval(r.get("p_value")),
                    tx.num(r.get("n")),
                    tx.dec(r.get("threshold")),
                    tx.num(r.get("n_tests")),
                    tx.num(r.get("n_cells")),
                    tx.num((r.get("n_cells") or 0) - (r.get("suppressed_cells") or 0)),
                ]
                for r in a.table_tests[:TOP]
            ],
        )
    )
    return s
