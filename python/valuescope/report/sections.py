"""The report's content, built once from an Analysis and rendered twice (HTML and Markdown).

Each section holds a reading, figures and small tables. Everything shown is capped (TOP and the
other limits below), so the report's size and time do not grow with the corpus.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from valuescope.report import figures as fg
from valuescope.report import text as tx
from valuescope.report.load import Analysis, CrossTable

RESPONSE_TYPES = (
    "strong support",
    "mild support",
    "neutral acknowledgment",
    "reframing",
    "mild resistance",
    "strong resistance",
    "no values",
)
TOP = 20  # bars in a top-values chart, rows in a table
PANELS = 6  # small multiples in an association figure
PER_PANEL = 5  # values per panel
HEAT_ROWS, HEAT_COLS = 15, 10
CV_N = 10
MAX_MODELS = 8
TAIL_CUTOFF = 0.04  # percent of conversations: the paper's long-tail line
TREE_CHILDREN = 5
CLOSE_PP = 0.5  # percentage points: a reference difference below this is "close"
CREDIT_URLS = {
    "dataset": "https://huggingface.co/datasets/Anthropic/values-in-the-wild",
    "paper": "https://arxiv.org/abs/2504.15236",
    "clio": "https://arxiv.org/abs/2412.13678",
    "licence": "https://creativecommons.org/licenses/by/4.0/",
}

TITLES = {
    "headline": "Headline numbers",
    "values": "Top values",
    "tail": "The long tail",
    "taxonomy": "Taxonomy",
    "responses": "Response types",
    "associations": "Associations",
    "invariance": "Context invariance",
    "mirroring": "Mirroring",
    "models": "Cross-model comparison",
    "reference": "Reference comparison",
    "privacy": "Privacy",
    "method": "Method",
}


@dataclass
class Table:
    caption: str
    header: list[str]
    rows: list[list[str]]
    numeric: int = 1  # columns from this index on are right-aligned numbers
    open: bool | None = None  # shown unfolded in HTML; None: only when short


@dataclass
class Figure:
    svg: str
    caption: str


Block = str | Figure | Table  # a paragraph of reading, a figure or a table, in reading order


@dataclass
class Section:
    id: str
    title: str
    cards: list[tuple[str, str]] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)  # (text, url): credits only

    def para(self, text: str) -> None:
        self.blocks.append(text)

    def figure(self, svg: str, caption: str) -> None:
        self.blocks.append(Figure(svg, caption))

    def table(self, t: Table) -> None:
        self.blocks.append(t)


def _section(key: str) -> Section:
    return Section(id=key, title=TITLES[key])


def _not_computed(s: Section, why: str) -> Section:
    s.para(f"Not computed: {why}")
    return s


def _finite(x: Any) -> bool:
    return x is not None and isinstance(x, int | float) and math.isfinite(x)


# -- headline, values, tail ----------------------------------------------------------------------


def headline(a: Analysis) -> Section:
    s, m = _section("headline"), a.summary
    t = m.get("thresholds", {})
    s.cards = [
        ("conversations analysed", tx.num(m.get("n_conversations"))),
        ("with AI values", tx.pct(m.get("pct_with_ai_values"))),
        ("with human values", tx.pct(m.get("pct_with_human_values"))),
        ("AI values per conversation", tx.dec(m.get("mean_ai_values"))),
        ("human values per conversation", tx.dec(m.get("mean_human_values"))),
        ("AI values reported", tx.num(len(a.ai_values))),
        ("models", tx.num(len(a.models))),
        (
            "privacy floor: conversations / users",
            f"{tx.num(t.get('min_conversations'))} / {tx.num(t.get('min_users'))}",
        ),
    ]
    s.para(tx.headline(m, len(a.ai_values), len(a.human_values)))
    return s


def _value_table(caption: str, rows: Sequence[dict[str, Any]]) -> Table:
    return Table(
        caption,
        ["value", "conversations", "% of conversations", "% of occurrences"],
        [
            [
                r["value"],
                tx.num(r["n_conversations"]),
                tx.pct(r["pct_convos"]),
                tx.pct(r["pct_total_occurrences"]),
            ]
            for r in rows[:TOP]
        ],
    )


def top_values(a: Analysis) -> Section:
    s = _section("values")
    if not a.ai_values and not a.human_values:
        return _not_computed(s, "no value passed the privacy thresholds.")
    panels = []
    if a.ai_values:
        top = a.ai_values[:TOP]
        panels.append(
            ("AI values", [r["value"] for r in top], [r["pct_convos"] for r in top], fg.AI)
        )
    if a.human_values:
        top = a.human_values[:TOP]
        panels.append(
            ("Human values", [r["value"] for r in top], [r["pct_convos"] for r in top], fg.HUMAN)
        )
    s.figure(
        fg.barh_panels(panels, xlabel="% of conversations"),
        f"The {TOP} most frequent AI values (expressed by the model) and human values "
        "(stated by the user), as a share of all analysed conversations.",
    )
    s.para(tx.top_values(a.ai_values, a.human_values))
    if a.ai_values_explicit:
        s.para(
            "Values the AI states explicitly (rather than expresses implicitly): "
            + tx.named_shares(a.ai_values_explicit, "value", "pct_convos")
            + "."
        )
    s.table(_value_table("Top AI values", a.ai_values))
    s.table(_value_table("Top human values", a.human_values))
    if a.ai_values_explicit:
        s.table(_value_table("Top explicitly stated AI values", a.ai_values_explicit))
    return s


def long_tail(a: Analysis) -> Section:
    s = _section("tail")
    ai = [float(r["pct_convos"]) for r in a.ai_values if _finite(r["pct_convos"])]
    human = [float(r["pct_convos"]) for r in a.human_values if _finite(r["pct_convos"])]
    under = sum(1 for p in ai if p < TAIL_CUTOFF)
    suppressed = a.summary.get("suppressed", {}).get("ai_values")
    if ai or human:
        s.figure(
            fg.rank_frequency(
                [("AI values", ai, fg.AI), ("human values", human, fg.HUMAN)],
                cutoff=TAIL_CUTOFF,
            ),
            "Rank-frequency plot (log-log): each value's share of conversations against its "
            f"rank; the dashed line marks {TAIL_CUTOFF:g}% of conversations.",
        )
    s.para(tx.long_tail(len(ai), under, TAIL_CUTOFF, suppressed))
    s.table(
        Table(
            "Long tail",
            ["", "AI values", "human values"],
            [
                ["values reported", tx.num(len(ai)), tx.num(len(human))],
                [
                    f"under {TAIL_CUTOFF:g}% of conversations",
                    tx.num(under),
                    tx.num(sum(1 for p in human if p < TAIL_CUTOFF)),
                ],
                [
                    "suppressed (too rare to report)",
                    tx.num(suppressed),
                    tx.num(a.summary.get("suppressed", {}).get("human_values")),
                ],
            ],
        )
    )
    return s


# -- taxonomy and reference ----------------------------------------------------------------------


def taxonomy(a: Analysis) -> Section:
    s = _section("taxonomy")
    if not a.taxonomy:
        return _not_computed(
            s, "no taxonomy/values_tree.csv in the analysis (run `valuescope taxonomy` first)."
        )
    nodes = [r for r in a.taxonomy if (r.get("level") or 0) >= 1]
    if not nodes:
        return _not_computed(s, "the taxonomy has no cluster levels.")
    by_parent: dict[str, list[dict[str, Any]]] = {}
    for r in nodes:
        by_parent.setdefault(r.get("parent_cluster_id") or "", []).append(r)
    for kids in by_parent.values():
        kids.sort(key=lambda r: -(r.get("pct_total_occurrences") or 0))
    top_level = max(r["level"] for r in nodes)
    roots = sorted(
        (r for r in nodes if r["level"] == top_level),
        key=lambda r: -(r.get("pct_total_occurrences") or 0),
    )
    items: list[tuple[str, int, float]] = []
    for root in roots[:8]:
        items.append((root["name"], 0, root.get("pct_total_occurrences") or 0.0))
        for kid in by_parent.get(root["cluster_id"], [])[:TREE_CHILDREN]:
            if kid["level"] >= 1:
                items.append((kid["name"], 1, kid.get("pct_total_occurrences") or 0.0))
    counts = {lvl: sum(1 for r in nodes if r["level"] == lvl) for lvl in range(1, top_level + 1)}
    s.figure(
        fg.tree_bars(items, xlabel="% of all AI value occurrences"),
        f"Top-level clusters and their {TREE_CHILDREN} largest sub-clusters.",
    )
    s.para(
        "Values clustered into "
        + tx.listing([f"{tx.num(n)} clusters at level {lvl}" for lvl, n in counts.items()], 9)
        + ". The top level splits as "
        + tx.named_shares(roots, "name", "pct_total_occurrences", 8)
        + " of all value occurrences."
    )
    s.table(
        Table(
            "Top-level clusters",
            ["cluster", "description", "% of occurrences"],
            [
                [r["name"], r.get("description") or "", tx.pct(r.get("pct_total_occurrences"))]
                for r in roots[:TOP]
            ],
            numeric=2,
        )
    )
    return s


def reference(a: Analysis) -> Section:
    s = _section("reference")
    if not a.reference:
        return _not_computed(
            s,
            "the values were not mapped onto the published taxonomy "
            "(taxonomy/reference_comparison.csv, from `valuescope taxonomy --reference vitw`).",
        )
    cols = {k for k, v in a.reference[0].items() if v is not None}
    if not {"name", "pct_reference", "pct_observed"} <= cols:
        return _not_computed(s, "taxonomy/reference_comparison.csv lacks the expected columns.")
    rows = [r for r in a.reference if _finite(r["pct_reference"]) and _finite(r["pct_observed"])]
    for r in rows:
        r["diff"] = r["pct_observed"] - r["pct_reference"]
    sizes = Counter(r["level"] for r in rows if r.get("level") is not None)
    # the coarsest level with several clusters carries the reading; the next finer one, with
    # more clusters to tell apart, the figure
    levels = sorted((k for k, n in sizes.items() if n > 1), reverse=True)
    coarse = [r for r in rows if r.get("level") == levels[0]] if levels else rows
    fine = [r for r in rows if r.get("level") == levels[1]] if len(levels) > 1 else coarse
    coarse.sort(key=lambda r: -abs(r["diff"]))
    fine = sorted(fine, key=lambda r: -abs(r["diff"]))[:TOP]
    where = f" (level {fine[0]['level']})" if fine and fine[0].get("level") is not None else ""
    s.figure(
        fg.diverging_barh(
            [r["name"] for r in fine],
            [r["diff"] for r in fine],
            [abs(r["diff"]) >= CLOSE_PP for r in fine],
            xlabel="this analysis minus the published share (percentage points)",
        ),
        f"Clusters of the published taxonomy{where} with the largest differences: this "
        "analysis's share of value occurrences minus the share in Huang et al. (2025); grey "
        f"when within {CLOSE_PP:g} percentage points.",
    )
    more = [r["name"] for r in coarse if r["diff"] >= CLOSE_PP]
    less = [r["name"] for r in coarse if r["diff"] <= -CLOSE_PP]
    reading = "Mapped onto the published taxonomy, "
    if more or less:
        parts = [f"more {tx.listing(more, 3)}"] if more else []
        parts += [f"less {tx.listing(less, 3)}"] if less else []
        reading += "this analysis expresses " + " and ".join(parts) + " than Claude did"
    else:
        reading += (
            f"this analysis's top-level profile is within {CLOSE_PP:g} percentage points "
            "of the published one in every cluster"
        )
    s.para(reading + f" (top-level shares of value occurrences; {len(a.reference)} clusters).")
    s.table(
        Table(
            "Published clusters",
            ["cluster", "level", "published", "this analysis", "difference (pp)"],
            [
                [
                    r["name"],
                    "" if r.get("level") is None else str(r["level"]),
                    tx.pct(r["pct_reference"]),
                    tx.pct(r["pct_observed"]),
                    f"{r['diff']:+.2f}",
                ]
                for r in coarse[:TOP] + ([] if fine is coarse else fine)
            ],
        )
    )
    return s


# -- response types and mirroring ----------------------------------------------------------------


def _ordered(rows: Sequence[dict[str, Any]], key: str = "response_type") -> list[dict[str, Any]]:
    order = {t: i for i, t in enumerate(RESPONSE_TYPES)}
    return sorted(rows, key=lambda r: order.get(r[key], len(order)))


def _top_models(a: Analysis) -> list[dict[str, Any]]:
    return sorted(a.models, key=lambda r: -(r.get("n_conversations") or 0))[:MAX_MODELS]


def response_types(a: Analysis) -> Section:
    s = _section("responses")
    rt = _ordered(a.response_types)
    if not rt:
        return _not_computed(s, "no response_types.csv in the analysis.")
    cats = [r["response_type"] for r in rt]
    s.figure(
        fg.grouped_barh(
            cats,
            [
                ("all conversations", [r["pct_all"] or 0 for r in rt], fg.AI),
                (
                    "with human values",
                    [r.get("pct_with_human_values") or 0 for r in rt],
                    fg.HUMAN,
                ),
            ],
            xlabel="% of conversations",
        ),
        "How the AI responds to the user's values: all analysed conversations, and those in "
        "which the user states at least one value.",
    )
    best = max(rt, key=lambda r: r["pct_all"] or 0)
    resist = sum(
        (r["pct_all"] or 0)
        for r in rt
        if r["response_type"] in ("mild resistance", "strong resistance")
    )
    support = sum(
        (r["pct_all"] or 0) for r in rt if r["response_type"] in ("strong support", "mild support")
    )
    s.para(
        f"The most common response is {best['response_type']} ({tx.pct(best['pct_all'])}). "
        f"Support (strong or mild) makes up {tx.pct(support)} of conversations and resistance "
        f"(mild or strong) {tx.pct(resist)}."
    )
    per_model = _response_types_per_model(a)
    if per_model is not None:
        names, shares = per_model
        s.figure(
            fg.stacked_shares(names, list(RESPONSE_TYPES), shares),
            "Response types per model, as a share of each model's conversations.",
        )
    s.table(
        Table(
            "Response types",
            ["response type", "conversations", "% of all", "% with human values"],
            [
                [
                    r["response_type"],
                    tx.num(r["n_conversations"]),
                    tx.pct(r["pct_all"]),
                    tx.pct(r.get("pct_with_human_values")),
                ]
                for r in rt
            ],
        )
    )
    return s


def _response_types_per_model(a: Analysis) -> tuple[list[str], list[list[float]]] | None:
    t = a.table("response_type__model")
    models = _top_models(a)
    if t is None or len(models) < 1:
        return None
    obs = {(r["row"], r["col"]): r["observed"] for r in t.cells.to_pylist()}
    names, shares = [], []
    for m in models:
        n = m.get("n_conversations") or 0
        if n <= 0:
            continue
        row = [100 * (obs.get((rt, m["model"])) or 0) / n for rt in RESPONSE_TYPES]
        if sum(row) > 0:  # a model whose cells were all suppressed has no bar to show
            names.append(m["model"])
            shares.append(row)
    return (names, shares) if names else None


def mirroring(a: Analysis) -> Section:
    s = _section("mirroring")
    rows = [r for r in _ordered(a.mirroring) if _finite(r.get("pct_mirrored"))]
    if not rows:
        return _not_computed(s, "no response type had enough conversations with human values.")
    s.figure(
        fg.barh(
            [f"{r['response_type']} (n={tx.num(r['n_conversations'])})" for r in rows],
            [r["pct_mirrored"] for r in rows],
            xlabel="% of conversations with human values in which the AI repeats one",
            color="#5a9e6f",
        ),
        "Mirroring: among conversations where the user states values, the share in which "
        "the AI expresses at least one of the same values, by response type.",
    )
    hi = max(rows, key=lambda r: r["pct_mirrored"])
    lo = min(rows, key=lambda r: r["pct_mirrored"])
    s.para(
        f"The AI mirrors a user's value most often when it responds with {hi['response_type']} "
        f"({tx.pct(hi['pct_mirrored'])}) and least often with {lo['response_type']} "
        f"({tx.pct(lo['pct_mirrored'])})."
    )
    return s


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
    s = _section("associations")
    alpha = a.summary.get("thresholds", {}).get("alpha", 0.05)
    task = a.table("ai_values__task_cluster", "ai_values__task")
    hv = a.table("human_values__ai_values")
    if task is None and hv is None:
        return _not_computed(s, "the analysis has no ai_values x task or human x AI value table.")
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
    heat_src = task if task is not None and task.cells.num_rows else hv
    if heat_src is not None and heat_src.cells.num_rows:
        rows, cols, m, sig = _heat(heat_src)
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


# -- invariance ----------------------------------------------------------------------------------


def invariance(a: Analysis) -> Section:
    s = _section("invariance")
    rows = [r for r in a.invariance if _finite(r.get("cv")) and (r.get("n_categories") or 0) >= 2]
    if not rows:
        return _not_computed(s, "no value was seen in at least two reported contexts.")
    contexts = sorted({r["context"] for r in rows})
    ctx = next((c for c in ("task_cluster", "task") if c in contexts), contexts[0])
    sel = sorted((r for r in rows if r["context"] == ctx), key=lambda r: r["cv"])
    low, high = sel[:CV_N], sel[::-1][:CV_N]
    label = ctx.replace("_", " ")
    s.figure(
        fg.barh_panels(
            [
                (
                    "Most context-dependent",
                    [r["value"] for r in high],
                    [r["cv"] for r in high],
                    fg.HUMAN,
                ),
                (
                    "Most stable across contexts",
                    [r["value"] for r in low],
                    [r["cv"] for r in low],
                    fg.AI,
                ),
            ],
            xlabel=f"coefficient of variation across {label}s",
            fmt="{:.3g}",
        ),
        f"Context invariance: the coefficient of variation of each value's rate across "
        f"{label}s (low = expressed everywhere alike).",
    )
    s.para(
        f"Across {label}s, the most stable values are {tx.listing([r['value'] for r in low], 3)}"
        f"; the most context-dependent are {tx.listing([r['value'] for r in high], 3)}. "
        f"The CV is computed over the {label}s that pass the privacy thresholds."
    )
    s.table(
        Table(
            "Coefficient of variation by context (most context-dependent first)",
            ["value", "context", "CV", "categories"],
            [
                [r["value"], r["context"], tx.dec(r["cv"], 3), tx.num(r["n_categories"])]
                for c in contexts
                for r in sorted((x for x in rows if x["context"] == c), key=lambda x: -x["cv"])[:5]
            ],
            numeric=2,
        )
    )
    return s


# -- models --------------------------------------------------------------------------------------


def models(a: Analysis) -> Section:
    s = _section("models")
    top = _top_models(a)
    if len(top) < 2:
        return _not_computed(s, "the analysis has fewer than two models.")
    s.table(
        Table(
            "Models",
            [
                "model",
                "conversations",
                "% of all",
                "with AI values",
                "with human values",
                "AI values / conv.",
            ],
            [
                [
                    r["model"],
                    tx.num(r["n_conversations"]),
                    tx.pct(r.get("pct_conversations")),
                    tx.pct(r.get("pct_with_ai_values")),
                    tx.pct(r.get("pct_with_human_values")),
                    tx.dec(r.get("mean_ai_values")),
                ]
                for r in top
            ],
        )
    )
    t = a.table("ai_values__model")
    if t is not None and a.ai_values:
        values = [r["value"] for r in a.ai_values[:12]]
        obs = {
            (r["row"], r["col"]): r["observed"]
            for r in t.cells.filter(
                pc.is_in(t.cells["row"], value_set=pa.array(values, pa.string()))
            ).to_pylist()
        }
        series = [
            (
                m["model"],
                [
                    100 * obs[(v, m["model"])] / m["n_conversations"]
                    if (v, m["model"]) in obs
                    else None
                    for v in values
                ],
            )
            for m in top
            if m.get("n_conversations")
        ]
        s.figure(
            fg.dotplot(values, series, xlabel="% of the model's conversations"),
            "The most frequent AI values, per model (a missing dot: below the privacy "
            "thresholds for that model).",
        )
    cmp = a.model_comparison
    if cmp is not None and cmp.num_rows:
        m = cmp.num_rows
        alpha = float(a.summary.get("thresholds", {}).get("alpha", 0.05))
        zstar = NormalDist().inv_cdf(1 - alpha / (2 * m))
        c = cmp.filter(pc.is_valid(cmp["z"]))
        c = c.append_column("absz", pc.abs(c["z"]))
        k = min(TOP, c.num_rows)
        top_rows = pc.take(c, pc.select_k_unstable(c, k, [("absz", "descending")])) if k else c
        rows = top_rows.sort_by([("absz", "descending")]).to_pylist()
        s.figure(
            fg.diverging_barh(
                [f"{r['value']}: {r['model_a']} vs {r['model_b']}" for r in rows],
                [r["diff_pct"] for r in rows],
                [abs(r["z"]) >= zstar for r in rows],
                xlabel="difference in % of conversations (model A minus model B)",
            ),
            f"The largest differences between models by |z| (two-proportion z-test): blue "
            f"where model A is higher, orange where model B is; grey when |z| <= {zstar:.2f}"
            f" (not significant, Bonferroni over {tx.num(m)} comparisons).",
        )
        n_sig = int(pc.sum(pc.greater_equal(c["absz"], zstar)).as_py() or 0)
        s.para(
            f"{tx.num(n_sig)} of {tx.num(m)} model-to-model differences are significant at "
            f"|z| > {zstar:.2f} (alpha = {alpha}, Bonferroni)."
            + (
                f" The largest: {rows[0]['value']} ({rows[0]['feature'].replace('_', ' ')}), "
                f"{tx.pct(rows[0]['pct_a'])} for {rows[0]['model_a']} against "
                f"{tx.pct(rows[0]['pct_b'])} for {rows[0]['model_b']}, z = {rows[0]['z']:.1f}."
                if rows
                else ""
            )
        )
        s.table(
            Table(
                "Largest differences",
                ["feature", "value", "model A", "model B", "% A", "% B", "z", "p"],
                [
                    [
                        r["feature"],
                        r["value"],
                        r["model_a"],
                        r["model_b"],
                        tx.pct(r["pct_a"]),
                        tx.pct(r["pct_b"]),
                        tx.dec(r["z"]),
                        tx.pval(r["p_value"]),
                    ]
                    for r in rows
                ],
                numeric=4,
            )
        )
    return s


# -- privacy and method --------------------------------------------------------------------------


def privacy(a: Analysis) -> Section:
    s = _section("privacy")
    t = a.summary.get("thresholds", {})
    sup = a.summary.get("suppressed", {})
    rows = [[k.replace("_", " "), tx.num(v)] for k, v in sup.items() if not isinstance(v, dict)]
    rows += [[f"cells of {k}", tx.num(v)] for k, v in (sup.get("table_cells") or {}).items()]
    tm = a.taxonomy_meta
    if "n_values_suppressed" in tm:
        rows.append(["values left out of the taxonomy", tx.num(tm["n_values_suppressed"])])
    if "n_task_clusters_folded" in tm:
        rows.append(["task clusters folded into a neighbour", tx.num(tm["n_task_clusters_folded"])])
    s.para(
        f"Every figure in this report describes at least {tx.num(t.get('min_conversations'))} "
        f"conversations from at least {tx.num(t.get('min_users'))} distinct users. Anything "
        "below that was suppressed by the engine before the analysis files were written: it is "
        "counted below and never named. The report reads only those files, never the features."
    )
    s.table(Table("Suppressed (counts only)", ["what", "suppressed"], rows, open=True))
    return s


def method(a: Analysis) -> Section:
    from valuescope import __version__

    s = _section("method")
    m = a.summary
    t = m.get("thresholds", {})
    s.blocks += [
        "Value frequency: n(v) is the number of conversations whose list contains v (a value "
        "counts once per conversation); % of conversations = 100 n(v) / N; % of occurrences = "
        "100 n(v) / sum of n over all values. Value strings are normalised (NFKC, lower case, "
        "trimmed, white space collapsed).",
        "Associations: each co-occurrence table is tested as a contingency table with "
        "E_ij = n_i+ n_+j / n; the adjusted (Haberman) residual is r_ij = (O_ij - E_ij) / "
        "sqrt(E_ij (1 - n_i+/n) (1 - n_+j/n)); a cell is significant when |r_ij| > "
        "Phi^-1(1 - alpha / 2m), Bonferroni over m tests (the table's rows by default; with "
        "m = 3,307 and alpha = 0.05 this is the paper's 4.33).",
        "Context invariance: CV(v) = population standard deviation / mean of the rate of v "
        "across the categories of a context. Mirroring: among conversations with human values, "
        "the share in which at least one human value is also among the AI values. Model "
        "differences: two-proportion z-test.",
        f"Privacy thresholds: {tx.num(t.get('min_conversations'))} conversations and "
        f"{tx.num(t.get('min_users'))} distinct users; alpha = {t.get('alpha')}.",
    ]
    ext = m.get("extraction") or {}
    why = (m.get("rejected_by_reason") or {}).items()
    reasons = tx.listing([f"{k}: {tx.num(v)}" for k, v in why], 6)
    inputs = [str(p).replace("\\", "/").rsplit("/", 1)[-1] for p in m.get("inputs") or []]
    s.para(
        f"Data: {tx.num(m.get('n_rows'))} feature rows read"
        + (
            f" from {tx.listing(inputs, 3)}" + (" and others" if len(inputs) > 3 else "")
            if inputs
            else ""
        )
        + f"; {tx.num(m.get('n_not_subjective'))} judged not subjective and "
        f"{tx.num(m.get('n_rejected'))} rejected for schema problems "
        f"({reasons or 'none'}); "
        f"{tx.num(m.get('n_conversations'))} conversations analysed. Extraction model: "
        f"{ext.get('model') or 'not recorded in the analysis'}; prompt version: "
        f"{ext.get('prompt_version') or 'not recorded'}. Report by valuescope {__version__}."
    )
    tm = a.taxonomy_meta
    if tm:
        levels = "/".join(str(n) for n in tm.get("levels") or []) or "not recorded"
        weighting = (
            ""
            if tm.get("weighted") is None
            else f" ({'weighted' if tm['weighted'] else 'unweighted'} by conversation counts)"
        )
        s.para(
            f"Taxonomy: values embedded with {tm.get('embedder') or 'an unrecorded embedder'}, "
            f"clustered bottom-up by mini-batch k-means into {levels} clusters per level"
            f"{weighting}; {tx.num(tm.get('n_task_clusters'))} task clusters."
        )
    s.para(
        'Method and reference data: Huang et al. (2025), "Values in the Wild: Discovering and '
        'Analyzing Values in Real-World Language Model Interactions", arXiv 2504.15236, and the '
        "Clio method (Tamkin et al., 2024, arXiv 2412.13678). The published value frequencies and "
        "taxonomy (Anthropic/values-in-the-wild on the Hugging Face hub) are used under the "
        "Creative Commons Attribution 4.0 licence (CC BY 4.0); credit: Anthropic."
    )
    s.links = [
        ("Anthropic/values-in-the-wild (dataset, CC BY 4.0)", CREDIT_URLS["dataset"]),
        ("Huang et al. 2025, arXiv 2504.15236", CREDIT_URLS["paper"]),
        ("Tamkin et al. 2024 (Clio), arXiv 2412.13678", CREDIT_URLS["clio"]),
        ("CC BY 4.0 licence", CREDIT_URLS["licence"]),
    ]
    return s


BUILDERS: list[Callable[[Analysis], Section]] = [
    headline,
    top_values,
    long_tail,
    taxonomy,
    response_types,
    associations,
    invariance,
    mirroring,
    models,
    reference,
    privacy,
    method,
]


def build_sections(a: Analysis) -> list[Section]:
    return [build(a) for build in BUILDERS]
