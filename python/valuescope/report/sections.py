"""The report's sections in order, built once from an Analysis and rendered twice (HTML and
Markdown). Here: headline, values, long tail, taxonomy, reference, privacy and method; the
response-type, invariance and model sections are in behaviour.py, associations in associations.py,
the paper's further analyses (within tasks, explicit values, value pairs, values to watch) in
paper.py.
Everything shown is capped (model.py), so the report's size and time do not grow with the corpus.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from valuescope.report import figures as fg
from valuescope.report import text as tx
from valuescope.report.associations import associations
from valuescope.report.behaviour import invariance, mirroring, models, response_types
from valuescope.report.frameworks import frameworks
from valuescope.report.load import Analysis
from valuescope.report.model import (
    CLOSE_PP,
    CREDIT_URLS,
    TAIL_CUTOFF,
    TOP,
    TREE_CHILDREN,
    Section,
    Table,
    finite,
    new_section,
    not_computed,
)
from valuescope.report.paper import explicit, pairs, watch, within_tasks
from valuescope.report.validity import measured, validity

# -- headline, values, tail ----------------------------------------------------------------------


def headline(a: Analysis) -> Section:
    s, m = new_section("headline"), a.summary
    t = m.get("thresholds", {})
    s.cards = [
        ("conversations analysed", tx.num(m.get("n_conversations"))),
        ("with AI values", tx.pct(m.get("pct_with_ai_values"))),
        ("with human values", tx.pct(m.get("pct_with_human_values"))),
        ("AI values per conversation", tx.dec(m.get("mean_ai_values"))),
        ("human values per conversation", tx.dec(m.get("mean_human_values"))),
        ("AI values reported", tx.num(len(a.ai_values))),
        ("models", _models_card(a)),
        (
            "privacy floor: conversations / users",
            f"{tx.num(t.get('min_conversations'))} / {tx.num(t.get('min_users'))}",
        ),
    ]
    s.blocks += caveats(a)  # first: what the figures below should be read with
    s.para(tx.headline(m, len(a.ai_values), len(a.human_values)))
    return s


def _models_card(a: Analysis) -> str:
    """The models reported; 'not recorded' when the logs named none (not '0')."""
    seen = (a.summary.get("n_distinct") or {}).get("models")
    if a.models:
        return tx.num(len(a.models))
    return "not recorded" if not seen else f"{tx.num(0)} of {tx.num(seen)} above the thresholds"


#: Below this many conversations the report says its sample is small.
SMALL_SAMPLE = 200
#: Reference mapping is weak below this many mapped values or this share of all values.
WEAK_MAPPED, WEAK_MAPPED_SHARE = 20, 0.5
CAUTION = "Read with care: "


def caveats(a: Analysis) -> list[str]:
    """Warnings about the inputs, each a paragraph, for the top of the report; none when the
    inputs give no reason for doubt."""
    m, out = a.summary, []
    t = m.get("thresholds", {})
    n = m.get("n_conversations") or 0
    rows, missing = m.get("n_rows") or 0, m.get("n_rows_without_user_id")
    if missing and rows:
        share = 100.0 * missing / rows
        out.append(
            f"{CAUTION}{tx.num(missing)} of {tx.num(rows)} feature rows ({tx.pct(share)}) have "
            "no user id. Each such conversation counts as a user of its own, so the privacy "
            f"floor of {tx.plural(t.get('min_users'), 'distinct user')} does not protect them: a "
            "figure may still rest on one person's conversations. Give the user field "
            "(`valuescope extract --user-field`) where the logs have one."
        )
    ext = m.get("extraction") or {}
    records, rejected = ext.get("records") or 0, ext.get("rejected") or 0
    if records and rejected / records >= 0.05:
        why = tx.listing(
            [f"{k} ({tx.num(v)})" for k, v in (ext.get("reject_reasons") or {}).items()], 4
        )
        out.append(
            f"{CAUTION}the extraction rejected {tx.num(rejected)} of {tx.num(records)} "
            f"conversations ({tx.pct(100.0 * rejected / records)})"
            + (f": {why}" if why else "")
            + ". The figures describe the conversations that were extracted, which may differ "
            "from those that were not."
        )
    if n < SMALL_SAMPLE:
        out.append(
            f"{CAUTION}only {tx.plural(n, 'conversation')} analysed. With so few, most values "
            "fall below the privacy thresholds, each conversation moves a share by a whole "
            "point or more, and the tests have little power."
        )
    sparse = [name for name, ct in a.tables.items() if _sparse(ct)]
    if sparse:
        out.append(
            f"{CAUTION}the chi-square tests of {tx.listing(sparse, 4)}"
            + (" and others" if len(sparse) > 4 else "")
            + " rest on sparse tables: most cells expect fewer than 5 conversations, where the "
            "chi-square approximation and the adjusted residuals are unreliable."
        )
    tm = a.taxonomy_meta
    mapped, unmapped = tm.get("n_reference_mapped"), tm.get("n_reference_unmapped")
    if mapped is not None and unmapped is not None and a.reference:
        total = mapped + unmapped
        if mapped < WEAK_MAPPED or (total and mapped / total < WEAK_MAPPED_SHARE):
            out.append(
                f"{CAUTION}the reference comparison rests on {tx.plural(mapped, 'value')} "
                f"matched to the published taxonomy (of {tx.num(total)}; values less similar "
                f"than {tm.get('reference_min_similarity')} are left unmatched): read its "
                "differences as indications only."
            )
    if a.taxonomy:
        levels = Counter(int(r.get("level") or 0) for r in a.taxonomy)
        top = max(levels) if levels else 0
        if top >= 1 and levels[top] <= 1:
            out.append(
                f"{CAUTION}the value tree has a single cluster at its top level: too few values "
                "passed the thresholds to build a hierarchy, so its levels group nothing."
            )
    return out


def _sparse(ct: Any) -> bool:
    """Most of the table's cells expect fewer than 5: its n occurrences spread over at least
    dof + 1 cells (an r x c table has (r-1)(c-1) degrees of freedom and r c >= dof + 1 cells)
    average below 5 each. From the test's own figures: no cell file is read."""
    n, dof = ct.test.get("n"), ct.test.get("dof")
    if not isinstance(n, int | float) or not isinstance(dof, int | float) or dof <= 0:
        return False
    return n < 5 * (dof + 1)


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
    s = new_section("values")
    if not a.ai_values and not a.human_values:
        return not_computed(s, "no value passed the privacy thresholds.")
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
    s = new_section("tail")
    ai = [float(r["pct_convos"]) for r in a.ai_values if finite(r["pct_convos"])]
    human = [float(r["pct_convos"]) for r in a.human_values if finite(r["pct_convos"])]
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
    s = new_section("taxonomy")
    if not a.taxonomy:
        return not_computed(
            s, "no taxonomy/values_tree.csv in the analysis (run `valuescope taxonomy` first)."
        )
    nodes = [r for r in a.taxonomy if (r.get("level") or 0) >= 1]
    if not nodes:
        return not_computed(s, "the taxonomy has no cluster levels.")
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
    s = new_section("reference")
    if not a.reference:
        return not_computed(
            s,
            "the values were not mapped onto the published taxonomy "
            "(taxonomy/reference_comparison.csv, from `valuescope taxonomy --reference vitw`).",
        )
    cols = {k for k, v in a.reference[0].items() if v is not None}
    if not {"name", "pct_reference", "pct_observed"} <= cols:
        return not_computed(s, "taxonomy/reference_comparison.csv lacks the expected columns.")
    rows = [r for r in a.reference if finite(r["pct_reference"]) and finite(r["pct_observed"])]
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


# -- privacy and method --------------------------------------------------------------------------


def privacy(a: Analysis) -> Section:
    s = new_section("privacy")
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
        f"conversations from at least {tx.plural(t.get('min_users'), 'distinct user')}. Anything "
        "below that was suppressed by the engine before the analysis files were written: it is "
        "counted below and never named. The report reads only those files, never the features."
    )
    s.table(Table("Suppressed (counts only)", ["what", "suppressed"], rows, open=True))
    return s


def method(a: Analysis) -> Section:
    from valuescope._core import __version__

    s = new_section("method")
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
        f"{tx.plural(t.get('min_users'), 'distinct user')}; alpha = {t.get('alpha')}.",
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
    done, missing = measured(a)
    s.para(
        "Validity: "
        + ("measured: " + "; ".join(done) + ". " if done else "")
        + ("Not measured: " + "; ".join(missing) + "." if missing else "")
        + " See the Validity section."
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


BUILDERS: list[Callable[[Analysis], Section | None]] = [
    headline,
    top_values,
    long_tail,
    taxonomy,
    response_types,
    associations,
    invariance,
    mirroring,
    models,
    within_tasks,
    explicit,
    pairs,
    watch,
    reference,
    frameworks,  # None (left out) without framework_mapping.csv
    privacy,
    validity,
    method,
]


def build_sections(a: Analysis) -> list[Section]:
    return [s for s in (build(a) for build in BUILDERS) if s is not None]
