"""``valuescope taxonomy``: feature files in; value tree, task clusters, clustered features and the
comparison with the published taxonomy out."""

from __future__ import annotations

import csv
import functools
import json
from collections.abc import Iterator, MutableMapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.parquet as pq

from valuescope import Engine, normalize
from valuescope.atomic import atomic_open, write_text
from valuescope.embed import DEFAULT_TASK_EMBEDDER, Embedder, make_embedder
from valuescope.errors import UserError
from valuescope.features import (
    SCHEMA_COLUMNS,
    check_columns,
    expand_paths,
    iter_batches,
    iter_record_batches,
    open_parquet,
)
from valuescope.reference import COMPARISON_COLUMNS, compare, load_reference
from valuescope.tasks import TaskClusters, cluster_tasks, stage
from valuescope.taxonomy import Namer, build_tree, leaf_paths, parse_levels, write_tree

TREE_FILE = "values_tree.csv"
FEATURES_FILE = "features_clustered.parquet"
COMPARISON_FILE = "reference_comparison.csv"
MAPPING_FILE = "reference_mapping.csv"
SUMMARY_FILE = "taxonomy.json"


@dataclass
class TaxonomyOptions:
    levels: str = "auto"  # "auto" or sizes such as "266,26,5"
    embedder: str = "minilm"  # for the values
    task_embedder: str = DEFAULT_TASK_EMBEDDER  # for the task texts
    embed_url: str | None = None
    cache_dir: Path | None = None
    namer: str = "none"  # none | anthropic | openai
    namer_model: str | None = None
    namer_url: str | None = None
    min_conversations: int = 15
    min_users: int = 10
    weighted: bool = False  # weight values by conversation counts (lowered agreement: docs)
    task_clusters: str = "auto"  # auto | none | K
    reference: str | None = None  # "vitw" or a values_tree.csv path
    seed: int = 0
    #: Write the clustered copy of the features (demo skips it: its corpus has task clusters).
    write_features: bool = True


@dataclass
class TaxonomySummary:
    n_values: int  # values that passed the thresholds (the tree's leaves)
    n_values_suppressed: int
    levels: list[int]
    embedder: str
    weighted: bool
    task_embedder: str = ""
    n_task_clusters: int = 0
    n_task_clusters_folded: int = 0
    files: dict[str, str] = field(default_factory=dict)


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
    files = expand_paths(features)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    emb = embedder or make_embedder(
        opts.embedder, base_url=opts.embed_url, cache_dir=opts.cache_dir
    )
    namer = _make_namer(opts)

    with stage(stages, "read values"):
        values, counts, n_suppressed = published_values(files, opts)
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
        write_tree(nodes, out / TREE_FILE)
    summary = TaxonomySummary(len(values), n_suppressed, levels, emb.model_id, opts.weighted)
    summary.files["tree"] = TREE_FILE

    if not opts.write_features:
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
        write_features(files, out / FEATURES_FILE, scan, tasks, paths, len(levels))
    summary.files["features"] = FEATURES_FILE
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
        _write_csv(out / COMPARISON_FILE, COMPARISON_COLUMNS, rows)
        _write_csv(out / MAPPING_FILE, ("value", "reference_value", "similarity"), mapping)
        summary.files["reference_comparison"] = COMPARISON_FILE
        summary.files["reference_mapping"] = MAPPING_FILE
    write_text(out / SUMMARY_FILE, json.dumps(asdict(summary), indent=2) + "\n")
    return summary


def _make_namer(opts: TaxonomyOptions) -> Namer | None:
    if opts.namer == "none":
        return None
    if not opts.namer_model:
        raise UserError(f"--namer {opts.namer} needs --namer-model")
    from valuescope.namer import LLMNamer

    return LLMNamer(opts.namer, opts.namer_model, opts.namer_url)


def published_values(
    files: Sequence[Path], opts: TaxonomyOptions
) -> tuple[list[str], list[int], int]:
    """The AI values the engine publishes (above both thresholds) with their conversation counts,
    heaviest first, and how many it suppressed."""
    engine = Engine(tables=[], min_conversations=opts.min_conversations, min_users=opts.min_users)
    check_columns(files)  # a zero-row file gives the engine no batch to check
    for f in files:
        try:
            for batch in iter_batches(f, SCHEMA_COLUMNS):
                engine.update(batch)
        except ValueError as exc:  # SchemaError, or data that is not valid (bytes not UTF-8)
            raise UserError(f"{f}: {exc}") from None
    res = engine.result()
    table = res["ai_values"]
    vals = [str(v) for v in table.column("value").to_pylist()]
    cnts = [int(c) for c in table.column("n_conversations").to_pylist()]
    order = sorted(range(len(vals)), key=lambda i: (-cnts[i], vals[i]))
    suppressed = int(res["summary"]["suppressed"]["ai_values"])
    return [vals[i] for i in order], [cnts[i] for i in order], suppressed


@dataclass
class RowScan:
    """Per analysed row: its task's index in ``tasks`` (-1: none) and its user (null user: the
    conversation is its own user); plus every distinct normalised AI value seen."""

    tasks: list[str]
    task_ids: npt.NDArray[np.int64]
    users: list[str]
    values: list[str]
    n_prelabelled: int = 0  # analysed rows with a task that already carry a task_cluster


def _rows(files: Sequence[Path], columns: Sequence[str]) -> Iterator[pa.RecordBatch]:
    for f in files:
        yield from iter_record_batches(f, columns)


def scan_rows(files: Sequence[Path]) -> RowScan:
    task_index: dict[str, int] = {}
    ids: list[int] = []
    users: list[str] = []
    values: set[str] = set()
    prelabelled = 0
    cols = ("conversation_id", "user_id", "subjective", "task", "task_cluster", "ai_values")
    for batch in _rows(files, cols):
        d = batch.to_pydict()
        none = [None] * batch.num_rows
        cids, subj, tcs = (
            d["conversation_id"],
            d.get("subjective", none),
            d.get("task_cluster", none),
        )
        for i, (task, user, vals) in enumerate(
            zip(d.get("task", none), d.get("user_id", none), d.get("ai_values", none), strict=True)
        ):
            if subj[i] is False:  # the analysis drops these rows; so do the task clusters
                continue
            key = normalize(task) if task else ""
            prelabelled += bool(key and tcs[i])
            ids.append(task_index.setdefault(key, len(task_index)) if key else -1)
            users.append(user or f"c:{cids[i]}")
            values.update(normalize(v) for v in vals or ())
    return RowScan(
        list(task_index), np.asarray(ids, dtype=np.int64), users, sorted(values), prelabelled
    )


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


def write_features(
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
