"""`valuescope report`: report.html and report.md from an analysis directory.

The report reads only the analysis files (already privacy-suppressed by the engine), never the
features, so it cannot show anything the analysis did not publish.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from valuescope.atomic import write_text
from valuescope.findings.watch import CONTEXTS, values_to_watch, watch_csv
from valuescope.findings.watchlist import DEFAULT_WATCH
from valuescope.output import WATCH_FILE
from valuescope.report.html import render_html
from valuescope.report.load import Analysis, load_analysis
from valuescope.report.markdown import render_markdown
from valuescope.report.model import TITLES, Section
from valuescope.report.sections import build_sections
from valuescope.report.text import num

__all__ = ["TITLES", "Analysis", "Section", "build_sections", "load_analysis", "write_report"]

TITLE = "valuescope report: values in the wild"
WATCH_TABLES = {c[1] for c in CONTEXTS}


def write_report(analysis_dir: str | Path, watch: Sequence[str] | None = None) -> tuple[Path, Path]:
    """Writes ANALYSIS_DIR/report.html and report.md (each atomically); returns their paths.
    Also ANALYSIS_DIR/values_to_watch.csv: the values of `watch`, else of the list the analysis
    was run with, else the default list (valuescope.findings.watchlist)."""
    d = Path(analysis_dir)
    a = load_analysis(d)
    if watch is not None:
        names = list(watch)
    elif "watch" in a.summary:  # the published part of `analyze --watch FILE`'s list
        names = list(a.summary["watch"])
    else:
        names = list(DEFAULT_WATCH)
    tables = {n: t.cells for n, t in a.tables.items() if n in WATCH_TABLES}
    a.watch = values_to_watch(
        names,
        {r["value"]: r["n_conversations"] for r in a.ai_values},
        {r["value"]: r["n_conversations"] for r in a.human_values},
        tables,
    )
    write_text(d / WATCH_FILE, watch_csv(a.watch))
    sections = build_sections(a)
    subtitle = (
        f"{num(a.summary.get('n_conversations'))} conversations analysed; every figure describes "
        f"at least {num(a.summary.get('thresholds', {}).get('min_conversations'))} conversations "
        f"from {num(a.summary.get('thresholds', {}).get('min_users'))} users."
    )
    html_path, md_path = d / "report.html", d / "report.md"
    write_text(html_path, render_html(sections, TITLE, subtitle))
    write_text(md_path, render_markdown(sections, TITLE, subtitle))
    return html_path, md_path
