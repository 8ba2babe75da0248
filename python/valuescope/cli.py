"""The `valuescope` command line."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import click

from valuescope import __version__
from valuescope.cli_options import SizeParam, statistics_options
from valuescope.errors import UserError

# Stage commands live beside their code and are imported only when named: `analyze` then
# starts without loading the extraction stack (httpx, asyncio), about 0.1 s and 20 MB.
LAZY_COMMANDS = {
    "synth": "valuescope.cli_synth:synth_command",
    "extract": "valuescope.cli_extract:extract_command",
    "taxonomy": "valuescope.cli_taxonomy:taxonomy_command",
    "report": "valuescope.cli_report:report_command",
    "run": "valuescope.cli_run:run_command",
    "diff": "valuescope.cli_diff:diff_command",
}


class Group(click.Group):
    """Turns UserError into one line on stderr and exit status 2: no traceback for user errors."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except UserError as exc:
            click.echo(f"valuescope: error: {exc}", err=True)
            sys.exit(exc.exit_code)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = LAZY_COMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="valuescope")
def main() -> None:
    """Measure which values language models express in real conversations.

    Stages: extract (LLM features) -> taxonomy -> analyze (statistics) -> report.
    Start with `valuescope demo`: no data and no API key needed.
    """
    # OpenBLAS (loaded with numpy, under pyarrow) starts a worker per core that spins while
    # idle: 4% of analyze's CPU on 2 cores, taken from the engine. valuescope's own matrix
    # products are small (taxonomy similarities), so one BLAS thread serves. Set before numpy
    # loads; a value the user set wins.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    # pyarrow's default pool (mimalloc) keeps the pages of freed batches: reading a file
    # batch by batch peaks 30-75 MB higher than with the system allocator, at the same speed
    # (benches/RESULTS.md). Chosen before pyarrow loads: switched after, pyarrow's readers
    # have already started a mimalloc arena (about 30 MB more at 2M rows).
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")


@main.command("analyze")
@click.argument("features", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out",
    "-o",
    type=click.Path(path_type=Path),
    default=Path("valuescope-analysis"),
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
    default="128MiB",
    show_default=True,
    metavar="SIZE",
    help="Memory for the co-occurrence tables (e.g. 512MiB, 2GB, or 0 for no limit). Past it "
    "their cells go to temporary files (under $TMPDIR) and are merged back one partition at a "
    "time: memory stays flat on any input size, and the results are the same.",
)
@click.option(
    "--watch",
    "watch_file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    metavar="FILE",
    help="Values to watch, one per line (# comments), kept in summary.json: the report lists "
    "each published one (values_to_watch.csv and 'Values to watch') with the tasks, response "
    "types and values it is significantly associated with. Default: values the paper flags as "
    "signs of misuse (sexual exploitation, dominance, amorality, rule-breaking, moral "
    "nihilism, deception).",
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
    watch_file,
    dask_address,
) -> None:
    """Compute the statistics of FEATURES (Parquet files or directories of them).

    Writes to --out: summary.json; ai_values.csv, human_values.csv (value frequencies);
    response_types.csv; mirroring.csv; invariance.csv (context CV); models.csv;
    model_comparison.csv; model_comparison_within_tasks.csv (with several models and task
    clusters: each difference tested again within task clusters, Cochran-Mantel-Haenszel);
    explicit_by_response_type.csv and explicit_values.csv (values stated outright);
    value_pairs.csv (each significant human -> AI value pair: its response-type mix, and
    whether it mirrors, supports or opposes);
    tables/<A>__<B>.csv and .json (co-occurrence with chi-square and adjusted residuals);
    rejects.csv (rows that break the schema, with the reason).
    Figures below the privacy thresholds are suppressed everywhere.
    """
    from valuescope.analyze import AnalyzeOptions, analyze_files, parse_table
    from valuescope.findings.watchlist import read_watch_file

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
        watch=None if watch_file is None else read_watch_file(watch_file),
    )
    if dask_address is not None:
        from valuescope.dask import analyze_cli

        rep = analyze_cli(features, out, opts, dask_address)
    else:
        rep = analyze_files(features, out, opts)
    s = rep.summary
    click.echo(
        f"analysed {s['n_conversations']:,} conversations "
        f"({s['n_rejected']:,} rejected, {s['n_not_subjective']:,} not subjective) "
        f"in {rep.seconds:.1f}s -> {rep.out}/"
    )


@main.command("demo")
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
def demo_command(n, out, seed, quiet) -> None:
    """Run the whole pipeline on a synthetic corpus calibrated on the published data.

    No data, network or API key needed: synthesises extracted features for N conversations
    (value frequencies from "Values in the Wild", Huang et al. 2025, CC BY 4.0), analyses them
    and writes the report, then prints the headline findings.
    """
    from valuescope.demo import run_demo

    run_demo(n, out, seed=seed, progress=not quiet)


def console() -> None:
    """The `valuescope` console script: `main`, then a fast exit once a command has succeeded.

    By then every command has closed what it opened (files, pools, clusters, connections) in
    with-blocks; all the interpreter's own teardown would still do is free memory and unload
    modules, about 45 ms after a 2M-row `analyze` (1 s). Failures exit the normal way, so that
    nothing about an error is cut short. In-process callers (tests, notebooks) use `main`.
    """
    try:
        main.main(prog_name="valuescope")
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, ValueError):  # a reader that has gone, a stream already closed
        pass
    os._exit(0)


if __name__ == "__main__":
    console()
