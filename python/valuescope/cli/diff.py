"""`valuescope diff ANALYSIS_A ANALYSIS_B --out DIR`: the shares that changed between two
analyses, tested under Bonferroni."""

from __future__ import annotations

from pathlib import Path

import click


def _alpha(ctx: click.Context, param: click.Parameter, value: float) -> float:
    if not 0.0 < value < 1.0:
        raise click.BadParameter("must be between 0 and 1 (exclusive)")
    return value


@click.command("diff")
@click.argument("analysis_a", type=click.Path(path_type=Path))
@click.argument("analysis_b", type=click.Path(path_type=Path))
@click.option(
    "--out",
    "-o",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("valuescope-diff"),
    show_default=True,
    help="Directory for diff.csv, diff.md and diff.html.",
)
@click.option(
    "--alpha",
    type=float,
    default=0.05,
    show_default=True,
    callback=_alpha,
    help="Family-wise significance level, Bonferroni over the tests made.",
)
def diff_command(analysis_a: Path, analysis_b: Path, out: Path, alpha: float) -> None:
    """Compare two analysis directories (output of `valuescope analyze`): for every AI value,
    human value, response type and explicitly stated AI value published in both, the two shares
    of conversations, the difference in percentage points and Cohen's h, and a two-proportion
    z-test under Bonferroni.

    Names published in only one analysis are counted, not compared.
    """
    from valuescope.diff import run_diff

    d = run_diff(analysis_a, analysis_b, out, alpha)
    click.echo(
        f"{d.n_tests} names compared, {d.n_significant} significant (|z| > "
        f"{d.threshold:.2f}); wrote {out}"
    )
