"""`valuescope demo`: the pipeline on a synthetic corpus, then the headline findings."""

from __future__ import annotations

import time
from pathlib import Path

import click

from valuescope.cli.options import watch_option


@click.command("demo")
@click.option(
    "--n",
    "n",
    type=click.IntRange(min=1),
    default=1_000_000,
    show_default=True,
    help="Conversations to synthesise.",
)
@click.option(
    "--out",
    "-o",
    type=click.Path(path_type=Path),
    default=Path("valuescope-demo"),
    show_default=True,
    help="Directory for the corpus, analysis and report.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@watch_option
def demo_command(n, out, seed, quiet, watch) -> None:
    """Run the whole pipeline on a synthetic corpus calibrated on the published data.

    No data, network or API key needed: synthesises extracted features for N conversations
    (value frequencies from "Values in the Wild", Huang et al. 2025, CC BY 4.0), analyses them
    and writes the report, then prints the headline findings.
    """
    from valuescope.analyze.options import AnalyzeOptions
    from valuescope.layout import FEATURES
    from valuescope.pipeline import headline, run_pipeline
    from valuescope.synth import write_corpus
    from valuescope.taxonomy.options import TaxonomyOptions

    progress = not quiet
    t0 = time.perf_counter()
    res = run_pipeline(
        out,
        lambda path: write_corpus(path, n=n, seed=seed, progress=progress),
        f"synthesising {n:,} conversations' features -> {out / FEATURES}",
        AnalyzeOptions(progress=progress),
        # the synthetic corpus already has task clusters: only the value tree and the comparison
        # with the published taxonomy are needed, not a clustered copy of the features
        TaxonomyOptions(reference="vitw", seed=seed, clustered_copy=False),
        echo=click.echo,
        watch=watch,
    )
    click.echo("")
    click.echo(headline(res.analysis))
    click.echo("")
    click.echo(f"done in {time.perf_counter() - t0:.1f}s. Files:")
    click.echo(f"  features  {res.features}")
    click.echo(f"  analysis  {res.analysis}/ (summary.json, ai_values.csv, tables/, ...)")
    click.echo(f"  report    {res.report_html} (open it in a browser)")
