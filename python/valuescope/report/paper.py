"""Sections for the paper's further analyses: model differences within tasks (its appendix
B.5.3), explicit values by response type (B.6), value pairs and the opposing pattern, and the
values to watch. Each reads one published file and says so when the analysis lacks it.
"""

from __future__ import annotations

from typing import Any

from valuescope.report import figures as fg
from valuescope.report import text as tx
from valuescope.report.load import PAPER_FILES, Analysis
from valuescope.report.model import TOP, Section, Table, finite, new_section, not_computed
from valuescope.report.watch import NOT_PUBLISHED
from valuescope.schema import RESPONSE_TYPES

RESISTANCE = ("mild resistance", "strong resistance")
SUPPORT = ("strong support", "mild support")


def _absent(s: Section, key: str, why: str) -> Section:
    return not_computed(s, f"no {PAPER_FILES[key]} in the analysis ({why}).")


def _interval(lo: Any, hi: Any) -> str:
    return f"{tx.dec(lo)} to {tx.dec(hi)}" if finite(lo) and finite(hi) else "-"


# -- model differences within tasks -------------------------------------------------------------


def _verdict(r: dict[str, Any]) -> str:
    raw, within = bool(r.get("significant_raw")), bool(r.get("significant_within"))
    if raw and within:
        return "holds within tasks"
    if raw:
        return "explained by the task mix"
    if within:
        return "only within tasks"
    return "not significant"


def within_tasks(a: Analysis) -> Section:
    s = new_section("within_tasks")
    rows = a.within_tasks
    if rows is None:
        return _absent(
            s,
            "model_comparison_within_tasks",
            "it needs more than one model and a task cluster or task column, and an analysis "
            "made by a valuescope that computes it",
        )
    if not rows:
        return not_computed(s, "no model, value and task cluster passed the privacy thresholds.")
    for r in rows:
        r["verdict"] = _verdict(r)
    raw = [r for r in rows if r.get("significant_raw")]
    holds = [r for r in raw if r.get("significant_within")]
    explained = [r for r in raw if not r.get("significant_within")]
    only = [r for r in rows if r.get("significant_within") and not r.get("significant_raw")]
    thr = next((r["p_threshold"] for r in rows if finite(r.get("p_threshold"))), None)
    strata = max((int(r["n_strata"]) for r in rows if finite(r.get("n_strata"))), default=0)
    s.para(
        "A raw difference between two models can come from their users' tasks rather than from "
        "the models: a model used more for creative writing expresses more creative values. "
        "Each difference is therefore tested twice: raw (two-proportion test) and within task "
        "clusters (Cochran-Mantel-Haenszel test stratified by task cluster, with the common odds "
        f"ratio and its 95% interval), both at p < {tx.pval(thr)} (Bonferroni over "
        f"{tx.num(len(rows))} tests; up to {tx.plural(strata, 'stratum', 'strata')}, clusters "
        "below the privacy thresholds pooled into one unnamed stratum)."
    )
    s.para(
        f"Of {tx.plural(len(raw), 'raw difference')}, {tx.num(len(holds))} "
        f"{'holds' if len(holds) == 1 else 'hold'} within tasks and {tx.num(len(explained))} "
        f"{'does' if len(explained) == 1 else 'do'} not: "
        + (
            f"{_label(explained[0])} is a difference between the models' users' tasks more "
            "than between the models."
            if len(explained) == 1
            else f"those, such as {tx.listing([_label(r) for r in explained], 3)}, are "
            "differences between the models' users' tasks more than between the models."
            if explained
            else "every raw difference survives the control for the task."
        )
        + (
            f" {tx.num(len(only))} more appear only within tasks (masked by the task mix)."
            if only
            else ""
        )
    )
    shown = sorted(
        (r for r in rows if r["verdict"] != "not significant"),
        key=lambda r: (r["verdict"] != "explained by the task mix", -abs(r.get("z_raw") or 0)),
    )
    shown = (explained[: TOP // 2] + [r for r in shown if r not in explained])[:TOP]
    shown.sort(key=lambda r: -abs(r.get("z_raw") or 0))
    if shown:
        colors = {
            "holds within tasks": fg.AI,
            "explained by the task mix": "#b0b0b0",
            "only within tasks": fg.HUMAN,
        }
        s.figure(
            fg.forest(
                [_label(r) for r in shown],
                [r.get("odds_ratio") for r in shown],
                [r.get("or_ci_low") for r in shown],
                [r.get("or_ci_high") for r in shown],
                [colors[r["verdict"]] for r in shown],
                xlabel="common odds ratio within task clusters (model A / model B, log scale)",
            ),
            "Model differences within task clusters: the Mantel-Haenszel odds ratio with its 95% "
            "interval. Blue: significant raw and within tasks; grey: significant raw only "
            "(explained by the task mix); orange: significant within tasks only.",
        )
    s.table(
        Table(
            "Raw and within-task differences",
            [
                "value or response type",
                "model A",
                "model B",
                "% A",
                "% B",
                "raw p",
                "odds ratio (95% CI)",
                "CMH p",
                "Breslow-Day p",
                "verdict",
            ],
            [
                [
                    r["item"],
                    r["model_a"],
                    r["model_b"],
                    tx.pct(r.get("pct_a")),
                    tx.pct(r.get("pct_b")),
                    tx.pval(r.get("p_raw")),
                    _odds(r),
                    tx.pval(r.get("p_cmh")),
                    tx.pval(r.get("p_breslow_day")),
                    r["verdict"],
                ]
                for r in shown
            ],
            numeric=3,
        )
    )
    het = [r for r in shown if finite(r.get("p_breslow_day")) and thr and r["p_breslow_day"] < thr]
    if het:
        s.para(
            "The Breslow-Day test finds the odds ratio differs between task clusters for "
            f"{tx.listing([_label(r) for r in het], 3)}: there the common ratio summarises "
            "unequal task-level differences."
        )
    return s


def _odds(r: dict[str, Any]) -> str:
    return f"{tx.dec(r.get('odds_ratio'))} ({_interval(r.get('or_ci_low'), r.get('or_ci_high'))})"


def _label(r: dict[str, Any]) -> str:
    return f"{r['item']}: {r['model_a']} vs {r['model_b']}"


# -- explicit values ------------------------------------------------------------------------------


def explicit(a: Analysis) -> Section:
    s = new_section("explicit")
    by_rt = a.explicit_by_response_type
    if by_rt is None:
        return _absent(
            s, "explicit_by_response_type", "an analysis made by a valuescope that computes it"
        )
    order = {t: i for i, t in enumerate(RESPONSE_TYPES)}
    by_rt = sorted(
        (r for r in by_rt if finite(r.get("pct_with_explicit"))),
        key=lambda r: order.get(r["response_type"], len(order)),
    )
    if not by_rt:
        return not_computed(s, "no response type passed the privacy thresholds.")
    s.figure(
        fg.barh(
            [r["response_type"] for r in by_rt],
            [r["pct_with_explicit"] for r in by_rt],
            xlabel="% of conversations with AI values that state one explicitly",
        ),
        "Share of conversations whose AI values include at least one stated explicitly, by "
        "response type (intervals in the table).",
    )

    def pooled(group: tuple[str, ...]) -> float | None:
        sel = [r for r in by_rt if r["response_type"] in group]
        n = sum(r.get("n_conversations") or 0 for r in sel)
        k = sum(r.get("n_with_explicit") or 0 for r in sel)
        return 100.0 * k / n if n else None

    resist, support = pooled(RESISTANCE), pooled(SUPPORT)
    reframing = next((r for r in by_rt if r["response_type"] == "reframing"), None)
    if resist is not None and support is not None:
        s.para(
            f"The AI states its values outright in {tx.pct(resist)} of resisted conversations "
            f"(mild or strong) against {tx.pct(support)} of supported ones"
            + (f" and {tx.pct(reframing['pct_with_explicit'])} when reframing" if reframing else "")
            + ": values are "
            + ("more" if resist > support else "less")
            + " often made explicit when the AI pushes back."
        )
    s.table(
        Table(
            "Explicit values by response type",
            ["response type", "conversations", "with explicit values", "%", "95% CI"],
            [
                [
                    r["response_type"],
                    tx.num(r.get("n_conversations")),
                    tx.num(r.get("n_with_explicit")),
                    tx.pct(r.get("pct_with_explicit")),
                    f"{tx.pct(r.get('ci_low'))} to {tx.pct(r.get('ci_high'))}",
                ]
                for r in by_rt
            ],
        )
    )
    values = a.explicit_values
    if values is None:
        s.para(f"Not computed: no {PAPER_FILES['explicit_values']} in the analysis.")
        return s
    ranked = sorted((r for r in values if finite(r.get("ratio"))), key=lambda r: -r["ratio"])
    if ranked:
        s.para(
            "The values most often stated outright, relative to how often they are expressed "
            "at all: "
            + tx.listing([f"{r['value']} ({tx.dec(r['ratio'])})" for r in ranked], 5)
            + "."
        )
    s.table(
        Table(
            "Values most often stated explicitly",
            ["value", "expressed", "stated explicitly", "ratio", "95% CI"],
            [
                [
                    r["value"],
                    tx.num(r.get("n_expressed")),
                    tx.num(r.get("n_explicit")),
                    tx.dec(r.get("ratio")),
                    _interval(r.get("ci_low"), r.get("ci_high")),
                ]
                for r in ranked[:TOP]
            ],
        )
    )
    return s


# -- value pairs ---------------------------------------------------------------------------------


def _mix(r: dict[str, Any]) -> list[float]:
    return [float(r.get("pct_" + t.replace(" ", "_")) or 0.0) for t in RESPONSE_TYPES]


def _resisted(r: dict[str, Any]) -> float:
    m = _mix(r)
    return m[RESPONSE_TYPES.index("mild resistance")] + m[RESPONSE_TYPES.index("strong resistance")]


def pairs(a: Analysis) -> Section:
    s = new_section("pairs")
    if not a.has_value_pairs:
        return _absent(s, "value_pairs", "an analysis made by a valuescope that computes it")
    rows = a.value_pairs
    if not rows:
        return not_computed(s, "no human-value x AI-value pair is significant and published.")
    by = {
        k: [r for r in rows if r.get("pattern") == k]
        for k in ("mirroring", "supporting", "opposing")
    }
    for v in by.values():
        v.sort(key=lambda r: -(r.get("residual") or 0))
    s.para(
        f"{tx.plural(len(rows), 'human-value x AI-value pair')} co-occur more often than "
        "chance (adjusted residual above the threshold). A pair mirrors when the AI names the "
        "user's own value, opposes when its conversations are mostly resisted, and supports "
        f"otherwise: {tx.num(len(by['mirroring']))} mirroring, {tx.num(len(by['supporting']))} "
        f"supporting and {tx.num(len(by['opposing']))} opposing."
        + (
            " The strongest opposing pairs: "
            + tx.listing([f"{r['human_value']} -> {r['ai_value']}" for r in by["opposing"]], 3)
            + f" ({tx.pct(_resisted(by['opposing'][0]))} of the first resisted)."
            if by["opposing"]
            else ""
        )
    )
    shown = by["opposing"][:TOP] or sorted(rows, key=lambda r: -(r.get("residual") or 0))[:TOP]
    s.figure(
        fg.stacked_shares(
            [f"{r['human_value']} -> {r['ai_value']}" for r in shown],
            list(RESPONSE_TYPES),
            [_mix(r) for r in shown],
            xlabel="% of the pair's conversations",
            label_width=44,
        ),
        ("The opposing pairs" if by["opposing"] else "The strongest pairs (none opposes)")
        + ": how the AI responded in the conversations where the user states the first value "
        "and the AI expresses the second.",
    )
    s.table(
        Table(
            "Opposing pairs" if by["opposing"] else "Strongest pairs",
            [
                "human value",
                "AI value",
                "conversations",
                "residual",
                "% resisted",
                "mostly",
                "pattern",
            ],
            [
                [
                    r["human_value"],
                    r["ai_value"],
                    tx.num(r.get("n_conversations")),
                    tx.dec(r.get("residual"), 1),
                    tx.pct(_resisted(r)),
                    r.get("dominant_response_type") or "",
                    r.get("pattern") or "",
                ]
                for r in shown
            ],
            numeric=2,
        )
    )
    others = by["mirroring"][:5] + by["supporting"][:5]
    if others:
        s.para(
            "Strongest mirroring and supporting pairs: "
            + tx.listing([f"{r['human_value']} -> {r['ai_value']}" for r in others], 10)
            + "."
        )
    return s


# -- values to watch -----------------------------------------------------------------------------


def watch(a: Analysis) -> Section:
    s = new_section("watch")
    w = a.watch
    if w is None or not w.values:
        return not_computed(s, "no watch list was given.")
    published = [r for r in a.watch_rows if r.get("status") == "published"]
    hidden = [r["value"] for r in a.watch_rows if r.get("status") != "published"]
    s.para(
        f"Values chosen for watching ({tx.plural(len(w.values), 'value')}, from {w.source}): "
        "rare values that concentrate in a few tasks or in resisted conversations can point at "
        "attempts to get around the model's rules, as in Huang et al. (2025). For each one "
        "published, its significant task clusters and response types (adjusted residual above "
        "the table's threshold) and its value pairs."
    )
    names = list(dict.fromkeys(r["value"] for r in published))
    rows = []
    for v in names:
        for side in ("AI value", "human value"):
            mine = [r for r in published if r["value"] == v and r.get("side") == side]
            if not mine:
                continue

            def cats(prefix: str, mine: list[dict[str, Any]] = mine) -> str:
                found = [
                    r["category"]
                    for r in mine
                    if (r.get("context") or "").startswith(prefix) and r.get("category")
                ]
                return tx.listing(found, 5) or "none"

            rows.append(
                [
                    v,
                    side,
                    cats("task"),
                    cats("response type"),
                    cats("paired"),
                ]
            )
    if rows:
        s.table(
            Table(
                "Watched values",
                ["value", "as", "significant tasks", "significant response types", "paired with"],
                rows,
                numeric=5,
                open=True,
            )
        )
    else:
        s.para("None of the watched values is published in this analysis.")
    if hidden:
        s.para(f"Watched, {NOT_PUBLISHED}: {tx.listing(hidden, len(hidden))}.")
    return s
