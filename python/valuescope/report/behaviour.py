"""Sections on how the AI responds: response types, mirroring, context invariance, models."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from valuescope._core import bonferroni_threshold
from valuescope.report import figures as fg
from valuescope.report import text as tx
from valuescope.report.load import Analysis
from valuescope.report.model import (
    CV_N,
    MAX_MODELS,
    TOP,
    Section,
    Table,
    finite,
    new_section,
    not_computed,
)
from valuescope.schema import DEFAULT_ALPHA, RESPONSE_TYPES

# -- response types and mirroring ----------------------------------------------------------------


def _ordered(rows: Sequence[dict[str, Any]], key: str = "response_type") -> list[dict[str, Any]]:
    order = {t: i for i, t in enumerate(RESPONSE_TYPES)}
    return sorted(rows, key=lambda r: order.get(r[key], len(order)))


def _top_models(a: Analysis) -> list[dict[str, Any]]:
    return sorted(a.models, key=lambda r: -(r.get("n_conversations") or 0))[:MAX_MODELS]


def response_types(a: Analysis) -> Section:
    s = new_section("responses")
    rt = _ordered(a.response_types)
    if not rt:
        return not_computed(s, "no response_types.csv in the analysis.")
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
    s = new_section("mirroring")
    rows = [r for r in _ordered(a.mirroring) if finite(r.get("pct_mirrored"))]
    if not rows:
        return not_computed(s, "no response type had enough conversations with human values.")
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


# -- invariance ----------------------------------------------------------------------------------


def invariance(a: Analysis) -> Section:
    s = new_section("invariance")
    rows = [r for r in a.invariance if finite(r.get("cv")) and (r.get("n_categories") or 0) >= 2]
    if not rows:
        return not_computed(s, "no value was seen in at least two reported contexts.")
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
    s = new_section("models")
    top = _top_models(a)
    if len(top) < 2:
        return not_computed(s, "the analysis has fewer than two models.")
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
        alpha = float(a.summary.get("thresholds", {}).get("alpha", DEFAULT_ALPHA))
        # the engine's threshold: exact where 1 - alpha/2m rounds to 1 in floating point
        zstar = bonferroni_threshold(alpha, m)
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
