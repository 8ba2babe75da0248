"""diff.csv, diff.md and diff.html: every paired row in the CSV; the largest changes, both N's,
the thresholds and the warnings in the two reports. Only names the analyses published are
written, each beside the side that published it."""

from __future__ import annotations

import csv
import html
import io
from pathlib import Path

from valuescope.atomic import write_text
from valuescope.diff.compare import COLUMNS, Diff, Row
from valuescope.layout import DIFF_CSV, DIFF_HTML, DIFF_MD

#: Rows of the top-changes table, and names listed per side for values published on one side.
TOP = 20
LISTED = 20
#: Below this many conversations an analysis is called small (as the report's own caveat does).
SMALL_SAMPLE = 200
FEATURE_TITLES = {
    "ai_values": "AI values",
    "human_values": "human values",
    "response_type": "response types",
    "ai_values_explicit": "explicitly stated AI values",
}
TITLE = "valuescope diff"


def write_diff(d: Diff, out: Path) -> tuple[Path, Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    w.writerows(r.cells() for r in d.rows)
    paths = out / DIFF_CSV, out / DIFF_MD, out / DIFF_HTML
    write_text(paths[0], buf.getvalue())
    write_text(paths[1], markdown(d))
    write_text(paths[2], to_html(d))
    return paths


def _num(n: int | None) -> str:
    return "not recorded" if n is None else f"{n:,}"


def _floor(t: tuple[int | None, int | None]) -> str:
    return f"{_num(t[0])} conversations and {_num(t[1])} users"


def warnings(d: Diff) -> list[str]:
    out = []
    if d.a.thresholds != d.b.thresholds:
        out.append(
            "Warning: the two analyses used different privacy thresholds (A: "
            f"{_floor(d.a.thresholds)}; B: {_floor(d.b.thresholds)}). A name can be published "
            "on one side and not on the other for that reason alone, so the names paired here "
            "are not a like-for-like set. Run both analyses with the same thresholds."
        )
    for label, side in (("A", d.a), ("B", d.b)):
        if side.n_conversations < SMALL_SAMPLE:
            out.append(
                f"Warning: analysis {label} is small ({_num(side.n_conversations)} "
                "conversations): each conversation moves its shares by "
                f"{100 / side.n_conversations:.2f} points, few values pass its privacy "
                "thresholds, and the tests have little power."
            )
    return out


def _inputs(d: Diff) -> list[str]:
    return [
        f"A: {d.a.path} ({_num(d.a.n_conversations)} conversations; privacy floor "
        f"{_floor(d.a.thresholds)})",
        f"B: {d.b.path} ({_num(d.b.n_conversations)} conversations; privacy floor "
        f"{_floor(d.b.thresholds)})",
    ]


def _method(d: Diff) -> str:
    return (
        f"{d.n_tests:,} names published in both analyses were compared: per name, the share of "
        "each analysis's conversations, B minus A in percentage points, Cohen's h, and a pooled "
        "two-proportion z-test. Bonferroni over the "
        f"{d.n_tests:,} tests at alpha = {d.alpha:g}: a difference is significant when "
        f"|z| > {d.threshold:.4f}. {d.n_significant:,} are. Sorted by the size of the "
        "difference in percentage points."
    )


def _top_rows(d: Diff) -> list[list[str]]:
    return [
        [
            FEATURE_TITLES[r.feature],
            r.name,
            f"{r.pct_a:.2f}",
            f"{r.pct_b:.2f}",
            f"{r.diff_pp:+.2f}",
            f"{r.cohens_h:+.3f}",
            f"{r.z:+.2f}",
            f"{r.p_value:.2g}",
            "yes" if r.significant else "no",
        ]
        for r in d.rows[:TOP]
    ]


TOP_HEADER = ["feature", "name", "% A", "% B", "B - A (pp)", "Cohen's h", "z", "p", "significant"]


def _only_lines(d: Diff) -> list[tuple[str, str]]:
    """(a sentence of counts, a listing of names or ''), per feature with one-sided names."""
    out = []
    for feature, (in_a, in_b) in d.only.items():
        if not in_a and not in_b:
            continue
        title = FEATURE_TITLES[feature]
        counts = (
            f"{title}: {len(in_a):,} published in A only, {len(in_b):,} in B only "
            "(below a privacy threshold or absent on the other side; not compared)."
        )
        names = []
        for label, listed in (("A", in_a), ("B", in_b)):
            if listed:
                more = f" and {len(listed) - LISTED:,} more" if len(listed) > LISTED else ""
                names.append(f"In {label} only: " + ", ".join(listed[:LISTED]) + more)
        out.append((counts, "; ".join(names)))
    return out


def _largest(d: Diff, sign: int) -> list[Row]:
    return [r for r in d.rows if r.significant and r.diff_pp * sign > 0][:3]


def reading(d: Diff) -> str:
    up, down = _largest(d, 1), _largest(d, -1)
    if not up and not down:
        return "No difference between the two analyses passes the Bonferroni threshold."
    parts = []
    for rows, word in ((up, "more often in B"), (down, "less often in B")):
        if rows:
            parts.append(
                ", ".join(f"{r.name} ({r.diff_pp:+.2f} pp)" for r in rows) + f" appear {word}"
            )
    return "Largest significant changes: " + "; ".join(parts) + "."


def _md_text(x: object) -> str:
    """A paragraph: names cannot open HTML tags in a renderer that passes HTML through."""
    s = str(x).replace("\n", " ").replace("&", "&amp;")
    return s.replace("<", "&lt;").replace(">", "&gt;")


def _md_cell(x: object) -> str:
    """A table cell: also no pipe or backslash that would end or change the cell."""
    return _md_text(str(x).replace("\\", "\\\\").replace("|", "\\|"))


def markdown(d: Diff) -> str:
    lines = [f"# {TITLE}", ""]
    lines += [f"- {_md_text(s)}" for s in _inputs(d)] + [""]
    lines += [f"**{_md_text(w)}**\n" for w in warnings(d)]
    lines += [_md_text(_method(d)), "", _md_text(reading(d)), ""]
    if d.rows:
        lines += [f"## Largest changes (top {min(TOP, len(d.rows))} of {d.n_tests:,})", ""]
        lines.append("| " + " | ".join(TOP_HEADER) + " |")
        lines.append("| --- | --- | " + " | ".join("---:" for _ in TOP_HEADER[2:]) + " |")
        lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in _top_rows(d)]
        lines += ["", f"Every compared name is in {DIFF_CSV}.", ""]
    only = _only_lines(d)
    if only:
        lines += ["## Published on one side only", ""]
        for counts, names in only:
            lines.append(f"- {_md_text(counts)}" + (f" {_md_text(names)}." if names else ""))
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


CSS = """
body { margin:0 auto; max-width:1000px; padding:16px 28px; color:#1d1d1f;
       font:15px/1.5 "DejaVu Sans","Liberation Sans",Arial,sans-serif; }
h1 { font-size:23px; } h2 { font-size:18px; margin-top:22px; }
p, li { max-width:85ch; } .warn { background:#fff4e5; border-left:4px solid #e08a00;
padding:6px 10px; }
table { border-collapse:collapse; font-size:13px; }
th, td { border-bottom:1px solid #e3e3e3; padding:3px 8px; text-align:left; }
td.n { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
th { background:#f4f5f7; } .bar { display:inline-block; height:10px; }
.up { background:#3b6ea8; } .down { background:#c0504d; }
"""


def to_html(d: Diff) -> str:
    e = html.escape
    body = [f"<h1>{e(TITLE)}</h1>", "<ul>"]
    body += [f"<li>{e(s)}</li>" for s in _inputs(d)] + ["</ul>"]
    body += [f'<p class="warn">{e(w)}</p>' for w in warnings(d)]
    body += [f"<p>{e(_method(d))}</p>", f"<p>{e(reading(d))}</p>"]
    if d.rows:
        scale = max(abs(r.diff_pp) for r in d.rows[:TOP]) or 1.0
        body.append(f"<h2>Largest changes (top {min(TOP, len(d.rows))} of {d.n_tests:,})</h2>")
        head = "".join(f"<th>{e(h)}</th>" for h in [*TOP_HEADER, ""])
        trs = []
        for r, cells in zip(d.rows[:TOP], _top_rows(d), strict=True):
            tds = "".join(
                f'<td class="n">{e(c)}</td>' if i >= 2 else f"<td>{e(c)}</td>"
                for i, c in enumerate(cells)
            )
            width = round(120 * abs(r.diff_pp) / scale)
            cls = "up" if r.diff_pp > 0 else "down"
            tds += f'<td><span class="bar {cls}" style="width:{width}px"></span></td>'
            trs.append(f"<tr>{tds}</tr>")
        body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(trs)}</tbody></table>")
        body.append(f"<p>Every compared name is in {e(DIFF_CSV)}.</p>")
    only = _only_lines(d)
    if only:
        body.append("<h2>Published on one side only</h2><ul>")
        body += [
            f"<li>{e(counts)}" + (f" {e(names)}." if names else "") + "</li>"
            for counts, names in only
        ]
        body.append("</ul>")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(TITLE)}</title><style>{CSS}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
