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
from valuescope.report.text import num, plural
from valuescope.report.watch import read_watch_list, write_watch

__all__ = ["TITLES", "Analysis", "Section", "build_sections", "load_analysis", "write_report"]

TITLE = "valuescope report: values in the wild"


def write_report(
    analysis_dir: str | Path,
    taxonomy: str | Path | None = None,
    features: str | Path | None = None,
    watch: str | Path | None = None,
) -> tuple[Path, Path]:
    """Writes ANALYSIS_DIR/report.html and report.md (each atomically), and values_to_watch.csv;
    returns the report's paths. `taxonomy` and `features`: where those stages wrote, when the
    report cannot find them; `watch`: a file of values to watch (None: the default list)."""
    d = Path(analysis_dir)
    a = load_analysis(d, taxonomy, features)
    a.watch = read_watch_list(watch)
    _, a.watch_rows = write_watch(a, a.watch)
    sections = build_sections(a)
    subtitle = (
        f"{num(a.summary.get('n_conversations'))} conversations analysed; every figure describes "
        f"at least {num(a.summary.get('thresholds', {}).get('min_conversations'))} conversations "
        f"from {plural(a.summary.get('thresholds', {}).get('min_users'), 'user')}."
    )
    html_path, md_path = d / layout.REPORT_HTML, d / layout.REPORT_MD
    write_text(html_path, render_html(sections, TITLE, subtitle))
    write_text(md_path, render_markdown(sections, TITLE, subtitle))
    return html_path, md_path
