"""`valuescope report`: report.html and report.md from an analysis directory.

The report reads only the analysis files (already privacy-suppressed by the engine), never the
features, so it cannot show anything the analysis did not publish.
"""

from __future__ import annotations

from pathlib import Path

from valuescope import layout
from valuescope.atomic import write_text
from valuescope.report.html import render_html
from valuescope.report.load import Analysis, load_analysis
from valuescope.report.markdown import render_markdown
from valuescope.report.model import TITLES, Section
from valuescope.report.sections import build_sections
from valuescope.report.text import num

__all__ = ["TITLES", "Analysis", "Section", "build_sections", "load_analysis", "write_report"]

TITLE = "valuescope report: values in the wild"


def write_report(analysis_dir: str | Path) -> tuple[Path, Path]:
    """Writes ANALYSIS_DIR/report.html and report.md (each atomically); returns their paths."""
    d = Path(analysis_dir)
    a = load_analysis(d)
    sections = build_sections(a)
    subtitle = (
        f"{num(a.summary.get('n_conversations'))} conversations analysed; every figure describes "
        f"at least {num(a.summary.get('thresholds', {}).get('min_conversations'))} conversations "
        f"from {num(a.summary.get('thresholds', {}).get('min_users'))} users."
    )
    html_path, md_path = d / layout.REPORT_HTML, d / layout.REPORT_MD
    write_text(html_path, render_html(sections, TITLE, subtitle))
    write_text(md_path, render_markdown(sections, TITLE, subtitle))
    return html_path, md_path
