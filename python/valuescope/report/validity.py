"""The report's Validity section: what `valuescope validate` measured about the extraction (lint
rates, reviewed accuracy with intervals, reviewer and judge agreement, run-to-run agreement, the
privacy audit), set beside the figures the paper and Clio published, and what was not measured.
Reads only the files `validate` writes into the analysis directory."""

from __future__ import annotations

from typing import Any

from valuescope.report import text as tx
from valuescope.report.load import Analysis
from valuescope.report.model import Section, Table, new_section

#: Published figures to set beside each measurement (paper: Huang et al. 2025; Clio: Tamkin et
#: al. 2024).
PUBLISHED = {
    "ai_value_support": "98.8% (paper, human review)",
    "subjective": "94% (paper, human review)",
    "task_ok": "96% summaries (Clio)",
}
CLAIM_NAMES = {
    "ai_value_support": "AI values supported by the text",
    "subjective": "subjectivity label right",
    "response_type": "response type right",
    "human_value_precision": "human values stated by the user",
    "human_value_missed": "conversations with a stated value missed",
    "task_ok": "task description acceptable",
}


def _pct(x: Any) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _dec(x: Any) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def measured(a: Analysis) -> tuple[list[str], list[str]]:
    """(what was validated, what was not), in words, for this section and the Method section."""
    done, missing = [], []
    for attr, what in (
        ("lint", "automatic checks of the extracted features (validate lint)"),
        ("validity", "a blinded human or LLM review of a sample (validate sample, score)"),
        ("agreement", "agreement between two extraction runs (validate compare)"),
        ("privacy_audit", "an LLM privacy audit of the published strings (validate privacy)"),
    ):
        (done if getattr(a, attr) else missing).append(what)
    return done, missing


def validity(a: Analysis) -> Section:
    s = new_section("validity")
    done, missing = measured(a)
    if not done:
        s.para(
            "Not validated: the extraction and the taxonomy behind these figures have not been "
            "checked. `valuescope validate` measures them as the paper and Clio did (a blinded "
            "review sample, run-to-run agreement, an LLM judge, a privacy audit); its output "
            "files in this directory make this section (see docs/validate.md)."
        )
        return s
    s.para(
        "Measured: "
        + "; ".join(done)
        + "."
        + (" Not measured: " + "; ".join(missing) + "." if missing else "")
    )
    v = a.validity
    if v:
        how = (
            "re-weighted to the corpus (the sample was stratified by response type)"
            if v.get("reweighted")
            else "unweighted (a simple random sample)"
        )
        rows = []
        for claim, name in CLAIM_NAMES.items():
            e = (v.get("accuracy") or {}).get(claim)
            if not e:
                continue
            est = e.get(e.get("estimate", "unweighted")) or {}
            lo, hi = (est.get("ci95") or [None, None])[:2]
            rows.append(
                [
                    name,
                    _pct(est.get("p")),
                    f"{_pct(lo)} to {_pct(hi)}",
                    tx.num(e["unweighted"]["n"]),
                    PUBLISHED.get(claim, ""),
                ]
            )
        s.para(
            f"Accuracy from {v.get('accuracy_source', 'human')} judgments of "
            f"{tx.num(len(v.get('reviewers') or []))} reviewer(s), {how}; intervals are 95% "
            "Wilson intervals (at Kish's effective sample size when re-weighted)."
        )
        s.table(
            Table(
                "Accuracy of the extraction",
                ["claim", "estimate", "95% interval", "judged", "published"],
                rows,
                open=True,
            )
        )
        for key, title in (
            ("reviewer_agreement", "Agreement between reviewers (Krippendorff's alpha)"),
        ):
            ag = v.get(key)
            if ag:
                s.table(
                    Table(
                        title,
                        ["claim", "alpha", "units"],
                        [
                            [c, _dec(x["alpha"].get("alpha")), tx.num(x["alpha"].get("n_units"))]
                            for c, x in ag.items()
                        ],
                    )
                )
        for judge, ag in (v.get("judge_vs_human") or {}).items():
            s.table(
                Table(
                    f"LLM judge and human reviewers ({judge}; Krippendorff's alpha)",
                    ["claim", "alpha", "units"],
                    [
                        [c, _dec(x["alpha"].get("alpha")), tx.num(x["alpha"].get("n_units"))]
                        for c, x in ag.items()
                    ],
                )
            )
    g = a.agreement
    if g:
        c = g.get("conversations", {})
        rows = [
            [
                "response type",
                _pct(g["response_type"]["share_equal"].get("p")),
                _dec(g["response_type"]["kappa"].get("kappa")),
                "",
            ],
            [
                "subjective",
                _pct(g["subjective"]["share_equal"].get("p")),
                _dec(g["subjective"]["kappa"].get("kappa")),
                "",
            ],
        ]
        for col in ("ai_values", "human_values"):
            for level, e in (g.get(col) or {}).items():
                rows.append(
                    [
                        f"{col.replace('_', ' ')} ({level.replace('_', ' ')})",
                        _pct(e["share_identical"].get("p")),
                        _dec(e.get("alpha_masi")),
                        _dec(e.get("mean_jaccard")),
                    ]
                )
        s.para(
            f"Run-to-run agreement over {tx.num(c.get('in_both'))} conversations in both runs "
            f"({tx.num(c.get('only_in_a'))} only in the first, {tx.num(c.get('only_in_b'))} only "
            "in the second). Kappa for labels; Krippendorff's alpha with the MASI distance for "
            "value sets."
        )
        s.table(
            Table(
                "Agreement between two extraction runs",
                ["feature", "identical", "kappa / alpha (MASI)", "mean Jaccard"],
                rows,
                open=True,
            )
        )
    if a.lint:
        s.table(
            Table(
                f"Automatic checks over {tx.num(a.lint.get('n_conversations'))} conversations",
                ["check", "rate", "of"],
                [
                    [
                        c.get("description", k),
                        _pct(c.get("rate")),
                        f"{tx.num(c.get('units'))} {c.get('unit', '')}",
                    ]
                    for k, c in (a.lint.get("checks") or {}).items()
                ],
            )
        )
    if a.privacy_audit:
        ratings = [r.get("rating") for r in a.privacy_audit]
        rated = [int(r) for r in ratings if r not in (None, "")]
        counts = [[str(k), tx.num(sum(1 for r in rated if r == k))] for k in range(1, 6)]
        s.para(
            f"Privacy audit: {tx.num(len(ratings))} published strings rated by an LLM on Clio's "
            f"scale (1: identifies someone; 5: nothing identifying); {tx.num(len(rated))} rated, "
            f"{tx.num(sum(1 for r in rated if r < 3))} below 3. Clio's auditor agreed with human "
            "labels on 98% of 1,237 examples; a smaller model's ratings deserve less trust."
        )
        s.table(Table("Privacy audit ratings", ["rating", "strings"], counts))
    return s
