"""Report sections for the paper's further analyses: model differences within tasks (appendix
B.5.3, part of the cross-model section), values stated outright (B.6), the response-type mix of
value pairs (the opposing pattern), values to watch, and value frameworks on the taxonomy."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from valuescope.report import figures as fg
from valuescope.report import text as tx
from valuescope.report.load import Analysis, rows
from valuescope.report.model import RESPONSE_TYPES, TOP, Section, Table, finite, new_section

VERDICTS = ("holds within tasks", "explained by task mix", "only within tasks")


def _largest(t: pa.Table, mask: pa.Array, k: int) -> list[dict[str, Any]]:
    """Up to k rows of t where mask holds, largest |difference in percent| first."""
    t = t.filter(mask)
    if t.num_rows == 0:
        return []
    t = t.append_column("absd", pc.abs(pc.subtract(t["pct_a"], t["pct_b"])))
    k = min(k, t.num_rows)
    top = pc.take(t, pc.select_k_unstable(t, k, [("absd", "descending")]))
    return rows(top.sort_by([("absd", "descending")]))


def within_tasks(a: Analysis, s: Section) -> None:
    """Appends the stratified comparison to the cross-model section."""
    w = a.model_within
    if w is None:
        s.para(
            "Differences within task clusters: not computed (the comparison within tasks needs "
            "more than one model and a task_cluster column; run `valuescope taxonomy` first)."
        )
        return
    if w.num_rows == 0:
        s.para("Differences within task clusters: no model difference could be published.")
        return
    counts = {v: 0 for v in VERDICTS}
    for v in w["verdict"].to_pylist():
        if v in counts:
            counts[v] += 1
    m = w.num_rows
    thr = w["p_threshold"][0].as_py()
    s.para(
        "A raw difference between two models can be a difference between their users' tasks "
        "(the paper's appendix B.5.3). Each difference is tested again within task clusters "
        "(Cochran-Mantel-Haenszel, clusters below the privacy thresholds pooled into one "
        f"stratum), against the same Bonferroni threshold p < {thr:.2g} over {tx.num(m)} tests: "
        f"{tx.num(counts['holds within tasks'])} differences hold within tasks, "
        f"{tx.num(counts['explained by task mix'])} are explained by the models' task mix "
        "(significant raw, not within tasks), "
        f"{tx.num(counts['only within tasks'])} appear only within tasks."
    )
    for verdict, caption in (
        ("explained by task mix", "Explained by the task mix: significant raw, not within tasks"),
        ("holds within tasks", "Holding within tasks"),
    ):
        picked = _largest(w, pc.equal(w["verdict"], verdict), TOP)
        if not picked:
            continue
        s.table(
            Table(
                caption,
                [
                    "feature",
                    "value",
                    "model A",
                    "model B",
                    "% A",
                    "% B",
                    "raw p",
                    "common odds ratio (95% CI)",
                    "CMH p",
                    "Breslow-Day p",
                ],
                [
                    [
                        r["feature"].replace("_", " "),
                        r["value"],
                        r["model_a"],
                        r["model_b"],
                        tx.pct(r["pct_a"]),
                        tx.pct(r["pct_b"]),
                        tx.pval(r["p_value"]),
                        _or(r),
                        tx.pval(r["cmh_p_value"]),
                        tx.pval(r["breslow_day_p_value"]),
                    ]
                    for r in picked
                ],
                numeric=4,
            )
        )


def _or(r: dict[str, Any]) -> str:
    o, lo, hi = r.get("common_odds_ratio"), r.get("odds_ratio_low"), r.get("odds_ratio_high")
    if not finite(o):
        return "-"
    if finite(lo) and finite(hi):
        return f"{o:.2f} ({lo:.2f}-{hi:.2f})"
    return f"{o:.2f}"


def explicit(a: Analysis) -> Section:
    s = new_section("explicit")
    by_rt = {r["response_type"]: r for r in a.explicit_by_response_type}
    shown = [
        (t, by_rt[t]["pct_with_explicit"])
        for t in RESPONSE_TYPES
        if t in by_rt and finite(by_rt[t].get("pct_with_explicit"))
    ]
    if not shown:
        return _not_computed(s, "the analysis has no explicitly stated AI values.")
    s.figure(
        fg.barh(
            [t for t, _ in shown],
            [p for _, p in shown],
            xlabel="% of the response type's conversations with an explicitly stated AI value",
        ),
        "Conversations in which the AI states a value outright, per response type (the paper's "
        "appendix B.6 finds them rising in resistance and reframing).",
    )
    hi = max(shown, key=lambda x: x[1])
    lo = min(shown, key=lambda x: x[1])
    s.para(
        f"Values are stated explicitly most often in {hi[0]} ({tx.pct(hi[1])} of its "
        f"conversations) and least in {lo[0]} ({tx.pct(lo[1])})."
    )
    ev = a.explicit_values[:TOP]
    if ev:
        s.table(
            Table(
                "Values most often stated outright, relative to how often they are expressed "
                "(highest lower bound of the 95% Wilson interval first)",
                ["value", "expressed", "stated outright", "ratio", "95% interval"],
                [
                    [
                        r["value"],
                        tx.num(r["n_expressed"]),
                        tx.num(r["n_explicit"]),
                        tx.pct(100 * r["ratio"]),
                        f"{100 * r['ratio_low']:.1f}-{100 * r['ratio_high']:.1f}%",
                    ]
                    for r in ev
                ],
            )
        )
    return s


def _not_computed(s: Section, why: str) -> Section:
    s.para(f"Not computed: {why}")
    return s


def pairs(a: Analysis) -> Section:
    s = new_section("pairs")
    t = a.value_pairs
    if t is None:
        return _not_computed(s, "the analysis has no value_pairs.csv (custom tables).")
    if t.num_rows == 0:
        return _not_computed(s, "no human-value x AI-value pair is significant.")
    classes = t["class"].to_pylist()
    n = {c: classes.count(c) for c in ("mirroring", "supporting", "opposing")}
    s.para(
        f"Of {tx.num(t.num_rows)} significant human-value -> AI-value pairs, "
        f"{tx.num(n['mirroring'])} mirror (the same value on both sides), "
        f"{tx.num(n['supporting'])} support or complement, and {tx.num(n['opposing'])} oppose: "
        "at least half of their conversations met resistance, as the paper found for human "
        "'deception' answered with AI 'honesty' and 'harm prevention'."
    )
    for cls, caption in (
        ("opposing", "Opposing pairs (mostly in resistance)"),
        ("mirroring", "Mirroring pairs"),
        ("supporting", "Supporting pairs (strongest association first)"),
    ):
        sub = rows(t.filter(pc.equal(t["class"], cls)).slice(0, TOP))
        if not sub:
            continue
        s.table(
            Table(
                caption,
                ["human value", "AI value", "conversations", "residual", "reframing", "resistance"],
                [
                    [
                        r["human_value"],
                        r["ai_value"],
                        tx.num(r["n_conversations"]),
                        tx.dec(r["adjusted_residual"], 1),
                        tx.num(r["n_reframing"]) if r["n_reframing"] is not None else "-",
                        tx.pct(r["pct_resistance"]) if finite(r["pct_resistance"]) else "-",
                    ]
                    for r in sub
                ],
                numeric=2,
            )
        )
    return s


def watch(a: Analysis) -> Section:
    s = new_section("watch")
    if a.watch is None:
        return _not_computed(s, "the analysis has no values_to_watch.csv.")
    if not a.watch:
        s.para(
            "None of the watched values is published in this analysis (each is either absent "
            "or below the privacy thresholds; the two are not told apart)."
        )
        return s
    found: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in a.watch:
        found.setdefault((r["watched_value"], r["side"]), []).append(r)
    s.para(
        "Values chosen for watching (`valuescope analyze --watch FILE`; by default values the "
        "paper flags as signs of misuse), with the contexts they are significantly associated "
        "with. The paper used such a list to find jailbreak attempts."
    )
    out = []
    for (value, side), rs in found.items():
        ctx = [r for r in rs if r.get("context")]
        by: dict[str, list[str]] = {}
        for r in ctx:
            by.setdefault(r["context"], []).append(r["category"])
        out.append(
            [
                value,
                "AI" if side == "ai" else "human",
                tx.num(rs[0]["n_conversations"]),
                "; ".join(f"{c.replace('_', ' ')}: {tx.listing(v, 4)}" for c, v in by.items())
                or "no significant association",
            ]
        )
    s.table(
        Table(
            "Values to watch", ["value", "side", "conversations", "associated with"], out, numeric=2
        )
    )
    return s


def frameworks(a: Analysis) -> Section:
    s = new_section("frameworks")
    fw = a.frameworks
    if not fw:
        return _not_computed(s, "no framework_mapping.csv (written by `valuescope taxonomy`).")
    top = [r for r in fw if r.get("rank") == 1]
    levels = sorted({r["tree_level"] for r in top})
    level = levels[-1] if levels else None
    shown = [r for r in top if r["tree_level"] == level]
    for name in sorted({r["framework"] for r in shown}):
        rs = [r for r in shown if r["framework"] == name]
        s.figure(
            fg.barh(
                [f"{r['framework_value']} -> {r['cluster']}" for r in rs],
                [r["similarity"] for r in rs],
                xlabel="cosine similarity of the embeddings",
                fmt="{:.2f}",
            ),
            f"{name.capitalize()}'s values, each placed on its nearest cluster of this "
            f"analysis's taxonomy (level {level}).",
        )
    return s
