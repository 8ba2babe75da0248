"""`valuescope report ANALYSIS_DIR`: report.html and report.md from an analysis directory."""

from __future__ import annotations

import time
from pathlib import Path

import click

from valuescope.errors import UserError


@click.command("report")
@click.argument(
    "analysis_dir", type=click.Path(path_type=Path, file_okay=False), default="valuescope-analysis"
)
@click.option(
    "--watch",
    "watch_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    metavar="FILE",
    help="Values to watch, one per line (# comments), for the report's 'Values to watch' and "
    "values_to_watch.csv. Default: the list given to `valuescope analyze --watch`, else values "
    "the paper flags as signs of misuse.",
)
def report_command(analysis_dir: Path, watch_file: Path | None) -> None:
    """Write ANALYSIS_DIR/report.html (one offline file, figures inline) and report.md.

    ANALYSIS_DIR is the output of `valuescope analyze` (and optionally `valuescope taxonomy`).
    The report reads only those files, already privacy-suppressed, never the features. It also
    writes ANALYSIS_DIR/values_to_watch.csv (see --watch).
    """
    from valuescope.findings.watchlist import read_watch_file
    from valuescope.report import write_report

    if not (analysis_dir / "summary.json").is_file():
        raise UserError(f"{analysis_dir}: not an analysis directory (no summary.json)")
    t0 = time.perf_counter()
    watch = None if watch_file is None else read_watch_file(watch_file)
    html_path, md_path = write_report(analysis_dir, watch)
    click.echo(f"wrote {html_path} and {md_path} in {time.perf_counter() - t0:.1f}s")
