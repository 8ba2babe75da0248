"""`valuescope run`: the whole pipeline on real chat logs, extract -> taxonomy -> analyze -> report.

Each stage writes its files under --out, so a stage can be rerun on its own afterwards.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from valuescope.cli.extract import extract_from_cli, extract_options, split_extract_kwargs
from valuescope.cli.options import statistics_options, watch_option
from valuescope.taxonomy.embeddings import DEFAULT_EMBEDDER, DEFAULT_TASK_EMBEDDER


@click.command("run")
@click.argument("conversations", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option(
    "--out",
    "-o",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("valuescope-run"),
    show_default=True,
    help="Directory for features.parquet, analysis/ (with taxonomy/) and the report.",
)
@statistics_options
@click.option(
    "--levels",
    default="auto",
    show_default=True,
    help="Taxonomy cluster counts per level, bottom up (266,26,5), or auto.",
)
@click.option(
    "--embedder",
    default=DEFAULT_EMBEDDER,
    show_default=True,
    help="Embedder for the values: minilm (offline), minilm-static, "
    "sentence-transformers[:MODEL] or openai:MODEL.",
)
@click.option(
    "--task-embedder",
    default=DEFAULT_TASK_EMBEDDER,
    show_default=True,
    help="Embedder for the task texts (same choices; see valuescope taxonomy --help).",
)
@click.option(
    "--taxonomy/--no-taxonomy",
    "with_taxonomy",
    default=True,
    show_default=True,
    help="Build the value tree and task clusters before the analysis.",
)
@watch_option
@extract_options
def run_command(conversations: tuple[str, ...], out: Path, **kw: Any) -> None:
    """Extract features from CONVERSATIONS with an LLM, build the value taxonomy, analyse and
    report. CONVERSATIONS are JSONL, JSON or Parquet chat logs (OpenAI messages, ShareGPT,
    WildChat/LMSYS or plain transcripts). API keys come from ANTHROPIC_API_KEY or
    OPENAI_API_KEY only."""
    from valuescope.analyze.options import AnalyzeOptions
    from valuescope.pipeline import run_pipeline
    from valuescope.taxonomy.options import TaxonomyOptions

    ext, rest = split_extract_kwargs(kw)
    taxonomy = None
    if rest["with_taxonomy"]:
        taxonomy = TaxonomyOptions(
            levels=rest["levels"],
            embedder=rest["embedder"],
            task_embedder=rest["task_embedder"],
            min_conversations=rest["min_conversations"],
            min_users=rest["min_users"],
            reference="vitw",
        )
    res = run_pipeline(
        out,
        lambda path: extract_from_cli(conversations, str(path), **ext),
        "extracting features",
        AnalyzeOptions(
            min_conversations=rest["min_conversations"],
            min_users=rest["min_users"],
            alpha=rest["alpha"],
            progress=ext.get("progress", True),
        ),
        taxonomy,
        echo=lambda line: click.echo(line, err=True),
        watch=rest["watch"],
    )
    s = res.summary
    click.echo(
        f"analysed {s['n_conversations']:,} conversations; report: {res.report_html} "
        f"(and {res.report_md.name})"
    )
