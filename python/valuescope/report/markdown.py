"""report.md: the same sections as text and tables, for a pull request or a paper draft."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from valuescope.report.model import Figure, Section, Table


def cell(x: Any) -> str:
    """A table cell: pipes and HTML-significant characters escaped so a value cannot break out."""
    s = str(x).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
    return s.replace("<", "&lt;").replace(">", "&gt;")


def _table(t: Table) -> list[str]:
    if not t.rows:
        return []
    align = ["---:" if i >= t.numeric else "---" for i in range(len(t.header))]
    lines = [f"**{cell(t.caption)}**", ""]
    lines.append("| " + " | ".join(cell(h) for h in t.header) + " |")
    lines.append("| " + " | ".join(align) + " |")
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in t.rows]
    return [*lines, ""]


def _section(s: Section) -> list[str]:
    lines = [f"## {s.title}", ""]
    if s.cards:
        lines += ["| " + " | ".join(cell(k) for k, _ in s.cards) + " |"]
        lines += ["| " + " | ".join("---:" for _ in s.cards) + " |"]
        lines += ["| " + " | ".join(cell(v) for _, v in s.cards) + " |", ""]
    for b in s.blocks:
        if isinstance(b, Figure):
            lines += [f"*Figure (in report.html): {cell(b.caption)}*", ""]
        elif isinstance(b, Table):
            lines += _table(b)
        else:
            lines += [cell(b), ""]
    if s.links:
        lines += [" · ".join(f"[{text}]({url})" for text, url in s.links), ""]
    return lines


def render_markdown(sections: Sequence[Section], title: str, subtitle: str) -> str:
    lines = [f"# {title}", "", cell(subtitle), ""]
    for s in sections:
        lines += _section(s)
    return "\n".join(lines).rstrip() + "\n"
