"""`valuescope taxonomy FEATURES... --out DIR`: value tree, task clusters, clustered features."""

from __future__ import annotations

import time
from pathlib import Path

import click

from valuescope.cli.options import privacy_options
from valuescope.taxonomy.embeddings import DEFAULT_EMBEDDER, DEFAULT_TASK_EMBEDDER
from valuescope.taxonomy.frameworks import DEFAULT_FRAMEWORKS


@click.command("taxonomy")
@click.argument("features", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--out",
    "-o",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("valuescope-taxonomy"),
    show_default=True,
    help="Directory for values_tree.csv, features_clustered.parquet and the rest.",
)
@click.option(
    "--levels",
    default="auto",
    show_default=True,
    help="Cluster counts per level, bottom up (e.g. 266,26,5), or auto: the paper's ratios.",
)
@click.option(
    "--embedder",
    default=DEFAULT_EMBEDDER,
    show_default=True,
    help="Embedder for the values: minilm (offline transformer), minilm-static (offline, a "
    "static embedding distilled from minilm on the texts themselves: a text is the weighted "
    "mean of its tokens' vectors, each token's vector minilm's reading of it in a sample of "
    "1,024 of the texts), sentence-transformers[:MODEL] or openai:MODEL.",
)
@click.option(
    "--task-embedder",
    default=DEFAULT_TASK_EMBEDDER,
    show_default=True,
    help="Embedder for the task texts, same choices as --embedder. minilm-static runs minilm "
    "on 1,024 texts only and takes seconds for 300,000 distinct tasks; minilm takes about half "
    "an hour for them on two cores (cached after). Both reconstruct planted task categories "
    "about as well (benches/taxonomy_scale.py, docs/taxonomy.md).",
)
@click.option("--embed-url", default=None, help="Base URL of an OpenAI-compatible server (…/v1).")
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Embedding cache [default: $VALUESCOPE_CACHE_DIR or ~/.cache/valuescope].",
)
@click.option(
    "--namer",
    type=click.Choice(["none", "anthropic", "openai"]),
    default="none",
    show_default=True,
    help="LLM for cluster names and descriptions; none: each cluster's heaviest member.",
)
@click.option("--namer-model", default=None, help="Model for --namer.")
@click.option("--namer-url", default=None, help="Base URL for --namer (default: the provider's).")
@privacy_options
@click.option(
    "--weighted/--unweighted",
    default=False,
    show_default=True,
    help="Weight values by their conversation counts when clustering.",
)
@click.option(
    "--task-clusters", default="auto", show_default=True, help="auto, none or a cluster count."
)
@click.option(
    "--reference",
    default=None,
    help="vitw (the published tree) or a values_tree.csv: map the values onto it and compare.",
)
@click.option(
    "--frameworks",
    default=DEFAULT_FRAMEWORKS,
    show_default=True,
    help="Value frameworks to place on the tree (framework_mapping.csv): a comma-separated "
    "list of schwartz, schwartz-refined (Schwartz's 19 values) and rokeach, or none.",
)
@click.option("--seed", type=int, default=0, show_default=True)
def taxonomy_command(
    features: tuple[Path, ...],
    out: Path,
    levels: str,
    embedder: str,
    task_embedder: str,
    embed_url: str | None,
    cache_dir: Path | None,
    namer: str,
    namer_model: str | None,
    namer_url: str | None,
    min_conversations: int,
    min_users: int,
    weighted: bool,
    task_clusters: str,
    reference: str | None,
    frameworks: str,
    seed: int,
) -> None:
    """Cluster the AI values of FEATURES (Parquet files or directories) into a tree shaped like
    the published values_tree.csv, cluster the tasks, and write the features with task_cluster
    and ai_values_l1.. filled, ready for `valuescope analyze`.

    Only values above both privacy thresholds enter the tree or any name.
    """
    from valuescope.taxonomy.options import TaxonomyOptions
    from valuescope.taxonomy.run import run_taxonomy

    opts = TaxonomyOptions(
        levels=levels,
        embedder=embedder,
        task_embedder=task_embedder,
        embed_url=embed_url,
        cache_dir=cache_dir,
        namer=namer,
        namer_model=namer_model,
        namer_url=namer_url,
        min_conversations=min_conversations,
        min_users=min_users,
        weighted=weighted,
        task_clusters=task_clusters,
        reference=reference,
        frameworks=frameworks,
        seed=seed,
    )
    t0 = time.perf_counter()
    s = run_taxonomy(features, out, opts)
    click.echo(
        f"{s.n_values} values ({s.n_values_suppressed} below the thresholds) -> levels "
        f"{','.join(map(str, s.levels))}; {s.n_task_clusters} task clusters; "
        f"wrote {out} in {time.perf_counter() - t0:.1f}s"
    )
