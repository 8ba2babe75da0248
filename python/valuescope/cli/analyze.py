"""`valuescope analyze`: the statistics of feature files, into an analysis directory."""

from __future__ import annotations

from pathlib import Path

import click

from valuescope.analyze.options import DEFAULT_MEMORY_LIMIT
from valuescope.cli.options import SizeParam, format_size, statistics_options
from valuescope.layout import DEFAULT_ANALYSIS_OUT


@click.command("analyze")
@click.argument("features", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out",
    "-o",
    type=click.Path(path_type=Path),
    default=Path(DEFAULT_ANALYSIS_OUT),
    show_default=True,
    help="Directory for the analysis files.",
)
@statistics_options
@click.option(
    "--n-tests",
    type=click.IntRange(min=1),
    default=None,
    help="Number of tests m for Bonferroni [default: each table's number of rows].",
)
@click.option(
    "--table",
    "tables",
    multiple=True,
    metavar="A:B",
    help="Cross columns A and B (repeatable); replaces the six default tables.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=65_536,
    show_default=True,
    help="Rows per Arrow batch read from Parquet.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Processes over files and row groups, partial states merged. One process already "
    "uses every core (measured faster on 2 cores); more helps when Parquet decoding dominates.",
)
@click.option(
    "--checkpoint-every",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Save the engine state and the position reached every N batches (in --out).",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue from the checkpoint in --out (same inputs and settings); "
    "starts from the beginning when there is none.",
)
@click.option(
    "--memory-limit",
    type=SizeParam(),
    default=format_size(DEFAULT_MEMORY_LIMIT),
    show_default=True,
    metavar="SIZE",
    help="Memory for the co-occurrence tables (e.g. 512MiB, 2GB, or 0 for no limit). Past it "
    "their cells go to temporary files (under $TMPDIR) and are merged back one partition at a "
    "time: memory stays flat on any input size, and the results are the same.",
)
@click.option(
    "--dask",
    "dask_address",
    metavar="ADDRESS",
    default=None,
    help="Run on a Dask cluster: a scheduler address, or local:N for N local worker processes.",
)
def analyze_command(
    features,
    out,
    min_conversations,
    min_users,
    alpha,
    n_tests,
    tables,
    batch_size,
    quiet,
    jobs,
    checkpoint_every,
    resume,
    memory_limit,
    dask_address,
) -> None:
    """Compute the statistics of FEATURES (Parquet files or directories of them).

    Writes to --out: summary.json; ai_values.csv, human_values.csv (value frequencies);
    response_types.csv; mirroring.csv; invariance.csv (context CV); models.csv;
    model_comparison.csv; model_comparison_within_tasks.csv (each pair of models tested raw and
    within task clusters: Cochran-Mantel-Haenszel, common odds ratio, Breslow-Day; written with
    two or more models and task clusters or tasks); value_pairs.csv (significant human x AI
    value pairs, their response-type mix, mirroring / supporting / opposing);
    explicit_by_response_type.csv and explicit_values.csv (explicitly stated values);
    tables/<A>__<B>.csv and .json (co-occurrence with chi-square and adjusted residuals);
    rejects.csv (rows that break the schema, with the reason).
    Figures below the privacy thresholds are suppressed everywhere.
    """
    from valuescope.analyze.options import AnalyzeOptions, parse_table
    from valuescope.analyze.run import analyze_files

    opts = AnalyzeOptions(
        min_conversations=min_conversations,
        min_users=min_users,
        alpha=alpha,
        n_tests=n_tests,
        tables=[parse_table(t) for t in tables] or None,
        batch_size=batch_size,
        progress=not quiet,
        jobs=jobs,
        checkpoint_every=checkpoint_every,
        resume=resume,
        memory_limit=memory_limit or None,
    )
    if dask_address is not None:
        from valuescope.analyze.on_dask import analyze_cli

        rep = analyze_cli(features, out, opts, dask_address)
    else:
        rep = analyze_files(features, out, opts)
    s = rep.summary
    click.echo(
        f"analysed {s['n_conversations']:,} conversations "
        f"({s['n_rejected']:,} rejected, {s['n_not_subjective']:,} not subjective) "
        f"in {rep.seconds:.1f}s -> {rep.out}/"
    )
