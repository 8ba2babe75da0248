"""`valuescope diff ANALYSIS_A ANALYSIS_B --out DIR`: what changed between two analyses."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("diff")
@click.argument("analysis_a", type=click.Path(path_type=Path, file_okay=False))
@click.argument("analysis_b", type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--out",
    "-o",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("valuescope-diff"),
    show_default=True,
    help="Directory for diff.csv, diff.json, diff.html and diff.md.",
)
@click.option(
    "--alpha",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.05,
    show_default=True,
    help="Family-wise significance level, Bonferroni-corrected over the pairs tested.",
)
def diff_command(analysis_a: Path, analysis_b: Path, out: Path, alpha: float) -> None:
    """Compare two analysis directories (two models, two periods, two prompt versions).

    For every AI value, human value and response type published in both: the share of
    conversations on each side, the difference, Cohen's h, and a two-proportion z-test with a
    Bonferroni threshold over all the pairs tested; rows sorted by effect size. Values published
    on one side only are counted but not paired (their absence may be suppression).
    """
    from valuescope.diff import write_diff

    res, paths = write_diff(analysis_a, analysis_b, out, alpha)
    n_sig = sum(bool(r["significant"]) for r in res.rows)
    click.echo(f"{n_sig} of {res.n_tests} shares differ significantly -> {paths[2]}")
