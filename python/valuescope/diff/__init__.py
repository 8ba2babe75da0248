"""`valuescope diff`: what changed between two analyses (two models, two periods, two prompt
versions). Per AI value, human value and response type published on both sides: the two shares
of conversations, a pooled two-proportion z-test with a Bonferroni threshold over the pairs
tested, and Cohen's h as the effect size the rows are sorted by. Reads only the published
files of the two analyses, so it shows nothing either analysis suppressed; a value published on
one side only is counted, never paired (its absence on the other side may be suppression).
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path
from statistics import NormalDist
from typing import Any

from valuescope.atomic import write_text
from valuescope.errors import UserError

#: feature -> (file, key column)
FEATURES = {
    "ai_values": ("ai_values.csv", "value"),
    "human_values": ("human_values.csv", "value"),
    "response_type": ("response_types.csv", "response_type"),
}
DIFF_FILE = "diff.csv"
COLUMNS = (
    "feature",
    "value",
    "n_a",
    "total_a",
    "pct_a",
    "n_b",
    "total_b",
    "pct_b",
    "diff_pct",
    "cohens_h",
    "z",
    "p_value",
    "significant",
)
SHOWN = 20


@dataclass
class DiffResult:
    rows: list[dict[str, Any]]
    n_tests: int
    p_threshold: float
    unpaired: dict[str, tuple[int, int]]  # feature -> (only in A, only in B)
    totals: tuple[int, int]


def _summary(d: Path) -> dict[str, Any]:
    path = d / "summary.json"
    try:
        return json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise UserError(f"{d}: not an analysis directory (no summary.json)") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: unreadable ({exc.__class__.__name__})") from None


def _counts(d: Path, name: str, key: str) -> dict[str, int]:
    path = d / name
    if not path.is_file():
        return {}
    out: dict[str, int] = {}
    with path.open(newline="", encoding="utf-8") as fh:
        for i, row in enumerate(csv.DictReader(fh), start=2):
            try:
                out[row[key]] = int(row["n_conversations"])
            except (KeyError, TypeError, ValueError):
                raise UserError(f"{path}: row {i}: no {key} / n_conversations") from None
    return out


def two_proportion(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float] | None:
    """Pooled two-proportion z-test: (z, two-sided p); None when undefined."""
    if n1 <= 0 or n2 <= 0:
        return None
    p = (x1 + x2) / (n1 + n2)
    se = math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    if se == 0:
        return None
    z = (x1 / n1 - x2 / n2) / se
    return z, 2 * NormalDist().cdf(-abs(z))


def cohens_h(p1: float, p2: float) -> float:
    return 2 * math.asin(math.sqrt(p1)) - 2 * math.asin(math.sqrt(p2))


def diff_analyses(a: Path, b: Path, alpha: float = 0.05) -> DiffResult:
    sa, sb = _summary(a), _summary(b)
    na, nb = int(sa.get("n_conversations") or 0), int(sb.get("n_conversations") or 0)
    if na == 0 or nb == 0:
        raise UserError(f"{a if na == 0 else b}: the analysis has no conversations")
    rows: list[dict[str, Any]] = []
    unpaired = {}
    for feature, (name, key) in FEATURES.items():
        ca, cb = _counts(a, name, key), _counts(b, name, key)
        both = sorted(set(ca) & set(cb))
        unpaired[feature] = (len(set(ca) - set(cb)), len(set(cb) - set(ca)))
        for v in both:
            xa, xb = ca[v], cb[v]
            t = two_proportion(xa, na, xb, nb)
            rows.append(
                {
                    "feature": feature,
                    "value": v,
                    "n_a": xa,
                    "total_a": na,
                    "pct_a": 100 * xa / na,
                    "n_b": xb,
                    "total_b": nb,
                    "pct_b": 100 * xb / nb,
                    "diff_pct": 100 * (xa / na - xb / nb),
                    "cohens_h": cohens_h(min(xa / na, 1.0), min(xb / nb, 1.0)),
                    "z": None if t is None else t[0],
                    "p_value": None if t is None else t[1],
                }
            )
    m = sum(r["p_value"] is not None for r in rows)
    threshold = alpha / max(m, 1)
    for r in rows:
        r["significant"] = None if r["p_value"] is None else r["p_value"] < threshold
    rows.sort(key=lambda r: (-abs(r["cohens_h"]), r["feature"], r["value"]))
    return DiffResult(rows, m, threshold, unpaired, (na, nb))


def _csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in rows:
        w.writerow(
            [
                ""
                if r[c] is None
                else ("true" if r[c] is True else "false" if r[c] is False else r[c])
                for c in COLUMNS
            ]
        )
    return buf.getvalue()


def write_diff(a: Path, b: Path, out: Path, alpha: float = 0.05) -> tuple[DiffResult, list[Path]]:
    """Writes diff.csv, diff.json (the test settings), diff.html and diff.md under `out`."""
    from valuescope.report import text as tx
    from valuescope.report.html import render_html
    from valuescope.report.markdown import render_markdown
    from valuescope.report.model import Section, Table

    res = diff_analyses(a, b, alpha)
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / DIFF_FILE, _csv(res.rows))
    meta = {
        "a": str(a),
        "b": str(b),
        "n_conversations": list(res.totals),
        "alpha": alpha,
        "n_tests": res.n_tests,
        "p_threshold": res.p_threshold,
        "unpaired": {k: {"only_a": v[0], "only_b": v[1]} for k, v in res.unpaired.items()},
    }
    write_text(out / "diff.json", json.dumps(meta, indent=2, sort_keys=True) + "\n")
    sig = [r for r in res.rows if r["significant"]]
    s = Section(id="diff", title="What changed")
    s.para(
        f"A: {a} ({tx.num(res.totals[0])} conversations). B: {b} ({tx.num(res.totals[1])} "
        f"conversations). {tx.num(len(sig))} of {tx.num(res.n_tests)} shares differ "
        f"significantly (two-proportion z-test, p < {res.p_threshold:.2g}: alpha = {alpha}, "
        f"Bonferroni over the {tx.num(res.n_tests)} pairs). Sorted by effect size (Cohen's h)."
        " Only values published in both analyses are paired; "
        + "; ".join(
            f"{k.replace('_', ' ')}: {v[0]} only in A, {v[1]} only in B"
            for k, v in res.unpaired.items()
        )
        + "."
    )
    for title, pick in (
        ("Higher in A", lambda r: r["diff_pct"] > 0),
        ("Higher in B", lambda r: r["diff_pct"] < 0),
    ):
        shown = [r for r in sig if pick(r)][:SHOWN]
        s.table(
            Table(
                title,
                ["feature", "value", "% A", "% B", "difference (pp)", "Cohen's h", "p"],
                [
                    [
                        r["feature"].replace("_", " "),
                        r["value"],
                        tx.pct(r["pct_a"]),
                        tx.pct(r["pct_b"]),
                        f"{r['diff_pct']:+.2f}",
                        f"{r['cohens_h']:+.3f}",
                        tx.pval(r["p_value"]),
                    ]
                    for r in shown
                ],
                numeric=2,
            )
        )
    title = "valuescope diff"
    sub = f"{a} against {b}"
    write_text(out / "diff.html", render_html([s], title, sub))
    write_text(out / "diff.md", render_markdown([s], title, sub))
    return res, [out / DIFF_FILE, out / "diff.json", out / "diff.html", out / "diff.md"]
