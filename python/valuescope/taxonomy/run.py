"""``valuescope taxonomy``: feature files in; value tree, task clusters, clustered features and the
comparison with the published taxonomy out."""

from __future__ import annotations

import csv
import functools
import json
from collections.abc import MutableMapping, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from valuescope._core import normalize
from valuescope.atomic import atomic_open, write_text
from valuescope.errors import UserError
from valuescope.extraction_summary import merge_summaries, summary_path, write_summary
from valuescope.features import expand_paths, iter_record_batches, open_parquet
from valuescope.layout import (
    CLUSTERED_FEATURES,
    FRAMEWORK_MAPPING,
    REFERENCE_COMPARISON,
    REFERENCE_MAPPING,
    TAXONOMY_SUMMARY,
    TREE,
)
from valuescope.taxonomy.embeddings import Embedder, make_embedder
from valuescope.taxonomy.frameworks import parse_frameworks, write_framework_mapping
from valuescope.taxonomy.options import TaxonomyOptions, TaxonomySummary
from valuescope.taxonomy.reference import (
    COMPARISON_COLUMNS,
    MIN_SIMILARITY,
    compare,
    load_reference,
)
from valuescope.taxonomy.scan import RowScan, publishable_ai_values, scan_rows
from valuescope.taxonomy.tasks import TaskClusters, cluster_tasks, stage
from valuescope.taxonomy.tree import Namer, build_tree, leaf_paths, parse_levels, write_tree


def run_taxonomy(
    features: Sequence[str | Path],
    out: str | Path,
    opts: TaxonomyOptions | None = None,
    *,
    embedder: Embedder | None = None,
    task_embedder: Embedder | None = None,
    stages: MutableMapping[str, float] | None = None,
) -> TaxonomySummary:
    """Build everything into ``out``; the entry point for the CLI, ``demo`` and ``run``.
    ``embedder`` / ``task_embedder`` replace the ones the options name (tests pass private
    caches); ``stages`` receives the wall time of each stage in seconds."""
    opts = opts or TaxonomyOptions()
    frameworks = parse_frameworks(opts.frameworks)  # a bad option fails before any work
    files = expand_paths(features)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    emb = embedder or make_embedder(
        opts.embedder, base_url=opts.embed_url, cache_dir=opts.cache_dir
    )
    namer = _make_namer(opts)

    with stage(stages, "read values"):
        values, counts, n_suppressed = publishable_ai_values(files, opts)
    if not values:
        raise UserError(
            "no value passes the privacy thresholds "
            f"({opts.min_conversations} conversations, {opts.min_users} users): nothing to cluster"
        )
    levels = parse_levels(opts.levels, len(values))
    with stage(stages, "embed values"):
        vectors = emb.embed(values)
    with stage(stages, "cluster values"):
        nodes = build_tree(
            values,
            counts,
            vectors,
            levels,
            weighted=opts.weighted,
            seed=opts.seed,
            namer=namer,
        )
    with stage(stages, "write"):
        write_tree(nodes, out / TREE)
    summary = TaxonomySummary(len(values), n_suppressed, levels, emb.model_id, opts.weighted)
    summary.files["tree"] = TREE
    with stage(stages, "frameworks"):
        if write_framework_mapping(nodes, frameworks, emb, out / FRAMEWORK_MAPPING):
            summary.files["framework_mapping"] = FRAMEWORK_MAPPING

    if not opts.clustered_copy:
        return _finish(values, counts, opts, emb, summary, out, stages)
    with stage(stages, "read tasks"):
        scan = scan_rows(files)
    tasks: TaskClusters | None = None
    n_tasks = int((scan.task_ids >= 0).sum())
    # auto: keep task clusters the input already has (all rows with a task labelled)
    keep = opts.task_clusters == "auto" and n_tasks and scan.n_prelabelled == n_tasks
    if opts.task_clusters != "none" and n_tasks and not keep:
        temb = task_embedder or make_embedder(
            opts.task_embedder, base_url=opts.embed_url, cache_dir=opts.cache_dir
        )
        tasks = cluster_tasks(scan, temb, opts, namer, stages)
        summary.task_embedder = temb.model_id
        summary.n_task_clusters = len(tasks.names)
        summary.n_task_clusters_folded = tasks.n_folded
    with stage(stages, "embed values"):
        paths = value_paths(nodes, scan.values, emb)
    with stage(stages, "write"):
        write_clustered_features(files, out / CLUSTERED_FEATURES, scan, tasks, paths, len(levels))
    summary.files["features"] = CLUSTERED_FEATURES
    # the extraction's summary goes with its features, for the report of a later analysis
    carried = merge_summaries(files)
    if carried:
        write_summary(summary_path(str(out / CLUSTERED_FEATURES)), carried)
    return _finish(values, counts, opts, emb, summary, out, stages)


def _finish(
    values: list[str],
    counts: list[int],
    opts: TaxonomyOptions,
    emb: Embedder,
    summary: TaxonomySummary,
    out: Path,
    stages: MutableMapping[str, float] | None = None,
) -> TaxonomySummary:
    """The reference comparison (when asked for) and taxonomy.json."""
    if opts.reference:
        with stage(stages, "reference"):
            mapping, rows = compare(values, counts, load_reference(opts.reference), emb)
        summary.n_reference_mapped = sum(1 for _, m, _ in mapping if m)
        summary.n_reference_unmapped = len(mapping) - summary.n_reference_mapped
        summary.reference_min_similarity = MIN_SIMILARITY
        _write_csv(out / REFERENCE_COMPARISON, COMPARISON_COLUMNS, rows)
        _write_csv(out / REFERENCE_MAPPING, ("value", "reference_value", "similarity"), mapping)
        summary.files["reference_comparison"] = REFERENCE_COMPARISON
        summary.files["reference_mapping"] = REFERENCE_MAPPING
    write_text(out / TAXONOMY_SUMMARY, json.dumps(asdict(summary), indent=2) + "\n")
    return summary


def _make_namer(opts: TaxonomyOptions) -> Namer | None:
    if opts.namer == "none":
        return None
    if not opts.namer_model:
        raise UserError(f"--namer {opts.namer} needs --namer-model")
    from valuescope.taxonomy.namer import LLMNamer

    return LLMNamer(opts.namer, opts.namer_model, opts.namer_url)


def value_paths(nodes: Sequence, all_values: Sequence[str], emb: Embedder) -> dict[str, list[str]]:
    """Cluster names (levels 1..L) for every value in the data. Values outside the tree (below the
    thresholds) join their nearest level-1 cluster, so cluster-level counts lose no conversation;
    their own strings are never written."""
    paths = leaf_paths(nodes)
    rest = [v for v in all_values if v not in paths]
    level1 = [n for n in nodes if n.level == 1]
    if rest and level1:
        sims = emb.embed(rest) @ np.stack([n.centroid for n in level1]).T
        first_leaf = {n.cluster_id: n.members[0] for n in level1}
        for v, j in zip(rest, np.argmax(sims, axis=1), strict=True):
            paths[v] = paths[first_leaf[level1[int(j)].cluster_id]]
    return paths


def write_clustered_features(
    files: Sequence[Path],
    path: Path,
    scan: RowScan,
    tasks: TaskClusters | None,
    paths: dict[str, list[str]],
    n_levels: int,
) -> None:
    """The input rows with ``task_cluster`` filled and ``ai_values_l1..`` (cluster names per
    conversation, each once) added. Rows the analysis drops are copied unchanged."""
    level_cols = [f"ai_values_l{k}" for k in range(1, n_levels + 1)]
    writer: pq.ParquetWriter | None = None
    tmp = path.with_name(path.name + ".tmp")
    row = 0  # position among analysed rows, as in scan_rows
    norm = functools.lru_cache(maxsize=1 << 16)(normalize)
    try:
        for f in files:
            names = open_parquet(f).schema_arrow.names
            for batch in iter_record_batches(f, names):
                t = pa.Table.from_batches([batch])
                d = t.to_pydict()
                n = t.num_rows
                subj = d.get("subjective", [None] * n)
                tc: list[str | None] = list(d.get("task_cluster") or [None] * n)
                for i in range(n):
                    if subj[i] is False:
                        continue
                    if tasks is not None:
                        tid = int(scan.task_ids[row])
                        tc[i] = tasks.name_of_task(tid) if tid >= 0 else None
                    row += 1
                t = _set(t, "task_cluster", pa.array(tc, pa.string()))
                per_row = [
                    [paths[nv] for nv in map(norm, vs or ()) if nv in paths]
                    for vs in d.get("ai_values") or [None] * n
                ]
                for k, col in enumerate(level_cols):
                    lists = [list(dict.fromkeys(p[k] for p in ps)) for ps in per_row]
                    t = _set(t, col, pa.array(lists, pa.list_(pa.string())))
                if writer is None:
                    writer = pq.ParquetWriter(tmp, t.schema)
                else:
                    t = _conform(t, writer.schema)
                writer.write_table(t)
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        raise UserError("the feature files hold no rows")
    tmp.replace(path)


def _set(t: pa.Table, name: str, col: pa.Array) -> pa.Table:
    if name in t.column_names:
        return t.set_column(t.column_names.index(name), name, col)
    return t.append_column(name, col)


def _conform(t: pa.Table, schema: pa.Schema) -> pa.Table:
    cols = []
    for fld in schema:
        if fld.name in t.column_names:
            cols.append(t.column(fld.name).cast(fld.type))
        else:
            cols.append(pa.nulls(t.num_rows, fld.type))
    return pa.Table.from_arrays(cols, schema=schema)


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    with atomic_open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
