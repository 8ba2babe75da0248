"""`valuescope report ANALYSIS_DIR`: report.html and report.md from an analysis directory."""

from __future__ import annotations

import time
from pathlib import Path

import click

from valuescope.errors import UserError
from valuescope.layout import DEFAULT_ANALYSIS_OUT, SUMMARY


@click.command("report")
@click.argument(
    "analysis_dir", type=click.Path(path_type=Path, file_okay=False), default=DEFAULT_ANALYSIS_OUT
)
def report_command(analysis_dir: Path) -> None:
    """Write ANALYSIS_DIR/report.html (one offline file, figures inline) and report.md.

    ANALYSIS_DIR is the output of `valuescope analyze` (and optionally `valuescope taxonomy`).
    The report reads only those files, already privacy-suppressed, never the features.
    """
    from valuescope.report import write_report

    if not (analysis_dir / SUMMARY).is_file():
        raise UserError(f"{analysis_dir}: not an analysis directory (no {SUMMARY})")
    t0 = time.perf_counter()
    html_path, md_path = write_report(analysis_dir)
    click.echo(f"wrote {html_path} and {md_path} in {time.perf_counter() - t0:.1f}s")
