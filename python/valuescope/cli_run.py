"""`valuescope run`: the whole pipeline on real chat logs, extract -> taxonomy -> analyze -> report.

Each stage writes its files under --out, so a stage can be rerun on its own afterwards.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from valuescope.cli_extract import extract_from_cli, extract_options, split_extract_kwargs
from valuescope.cli_options import statistics_options


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
    default="minilm",
    show_default=True,
    help="Embedder for the values: minilm (offline), minilm-static, "
    "sentence-transformers[:MODEL] or openai:MODEL.",
)
@click.option(
    "--task-embedder",
    default="minilm-static",
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
@extract_options
def run_command(conversations: tuple[str, ...], out: Path, **kw: Any) -> None:
    """Extract features from CONVERSATIONS with an LLM, build the value taxonomy, analyse and
    report. CONVERSATIONS are JSONL, JSON or Parquet chat logs (OpenAI messages, ShareGPT,
    WildChat/LMSYS or plain transcripts). API keys come from ANTHROPIC_API_KEY or
    OPENAI_API_KEY only."""
    from valuescope.analyze import AnalyzeOptions, analyze_files
    from valuescope.report import write_report

    ext, rest = split_extract_kwargs(kw)
    out.mkdir(parents=True, exist_ok=True)
    features = out / "features.parquet"
    analysis = out / "analysis"
    click.echo("1/4 extracting features", err=True)
    extract_from_cli(conversations, str(features), **ext)
    inputs = [features]
    if rest["with_taxonomy"]:
        from valuescope.taxonomy_run import FEATURES_FILE, TaxonomyOptions, run_taxonomy

        click.echo("2/4 building the value taxonomy", err=True)
        tax_dir = analysis / "taxonomy"
        run_taxonomy(
            [features],
            tax_dir,
            TaxonomyOptions(
                levels=rest["levels"],
                embedder=rest["embedder"],
                task_embedder=rest["task_embedder"],
                min_conversations=rest["min_conversations"],
                min_users=rest["min_users"],
                reference="vitw",
            ),
        )
        inputs = [tax_dir / FEATURES_FILE]
    click.echo("3/4 analysing", err=True)
    rep = analyze_files(
        inputs,
        analysis,
        AnalyzeOptions(
            min_conversations=rest["min_conversations"],
            min_users=rest["min_users"],
            alpha=rest["alpha"],
            progress=ext.get("progress", True),
        ),
    )
    _record_extraction(analysis, features)
    click.echo("4/4 writing the report", err=True)
    html, md = write_report(analysis)
    s = rep.summary
    click.echo(f"analysed {s['n_conversations']:,} conversations; report: {html} (and {md.name})")


def _record_extraction(analysis: Path, features: Path) -> None:
    """Adds the extraction model and prompt version (from the features' own columns) to
    summary.json, for the report's method section."""
    import json

    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from valuescope.atomic import write_text

    cols = [
        c for c in ("extraction_model", "prompt_version") if c in pq.read_schema(features).names
    ]
    if not cols:
        return
    table = pq.read_table(features, columns=cols)
    found = {c: sorted(v for v in pc.unique(table[c]).to_pylist() if v) for c in cols}
    path = analysis / "summary.json"
    summary = json.loads(path.read_text(encoding="utf-8"))
    summary["extraction"] = {
        "model": ", ".join(found.get("extraction_model", [])) or None,
        "prompt_version": ", ".join(found.get("prompt_version", [])) or None,
    }
    write_text(path, json.dumps(summary, indent=2, sort_keys=True) + "\n")
