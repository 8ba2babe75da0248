"""`valuescope report ANALYSIS_DIR`: report.html and report.md from an analysis directory."""

from __future__ import annotations

import time
from pathlib import Path

import click

from valuescope.cli.options import watch_option
from valuescope.errors import UserError
from valuescope.layout import DEFAULT_ANALYSIS_OUT, SUMMARY


@click.command("report")
@click.argument(
    "analysis_dir", type=click.Path(path_type=Path, file_okay=False), default=DEFAULT_ANALYSIS_OUT
)
@click.option(
    "--taxonomy",
    "taxonomy_dir",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    default=None,
    help="The `valuescope taxonomy --out` directory [default: ANALYSIS_DIR/taxonomy, "
    "ANALYSIS_DIR, or the directory of the clustered features it analysed].",
)
@click.option(
    "--features",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    default=None,
    help="The extracted features file, for the extraction model and its reject summary when "
    "the analysis does not carry them (only those columns and the summary beside it are read).",
)
@watch_option
def report_command(
    analysis_dir: Path, taxonomy_dir: Path | None, features: Path | None, watch: Path | None
) -> None:
    """Write ANALYSIS_DIR/report.html (one offline file, figures inline) and report.md.

    ANALYSIS_DIR is the output of `valuescope analyze` (and optionally `valuescope taxonomy`).
    The report reads only those files, already privacy-suppressed, never the feature values.
    At its top it says when the inputs give reason for doubt: no user ids, a high extraction
    reject share, a small sample or sparse tables, weak reference matches, a one-cluster tree.
    """
    from valuescope.report import write_report

    if not (analysis_dir / SUMMARY).is_file():
        raise UserError(f"{analysis_dir}: not an analysis directory (no {SUMMARY})")
    t0 = time.perf_counter()
    html_path, md_path = write_report(analysis_dir, taxonomy_dir, features, watch)
    click.echo(f"wrote {html_path} and {md_path} in {time.perf_counter() - t0:.1f}s")
