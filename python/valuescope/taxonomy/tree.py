"""The value tree: distinct values embedded once, clustered bottom-up by the Rust k-means.

Only values that pass the privacy thresholds (the engine's published value list) enter the tree, so
no suppressed string can become a leaf or a name, and every cluster, holding at least one passing
value, passes too. Shares are percentages of the total occurrences of the published values, so each
level sums to 100 and a parent's share is the sum of its children's (as in the published file).
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from valuescope._core import KMeans, MiniBatchKMeans
from valuescope.atomic import atomic_open
from valuescope.errors import UserError
from valuescope.taxonomy.embeddings import Matrix, l2_normalise

#: The paper's tree: 3,307 values -> 266 -> 26 -> 5.
PAPER_SIZES = (3307, 266, 26, 5)
TREE_COLUMNS = (
    "cluster_id",
    "description",
    "name",
    "level",
    "parent_cluster_id",
    "pct_total_occurrences",
)
_ID_NAMESPACE = uuid.UUID("5d1f3f0e-3f55-4a57-9a38-0c1e0b6f7a11")

#: (a cluster's members, heaviest first; its nearest sibling's members) -> (name, description)
Namer = Callable[[Sequence[str], Sequence[str]], tuple[str, str]]


@dataclass
class Node:
    cluster_id: str
    name: str
    description: str
    level: int
    weight: float  # occurrences (conversation counts) of the values below it
    members: list[str]  # leaf values below it, heaviest first
    centroid: npt.NDArray[np.float32]
    parent: str = ""
    children: list[str] = field(default_factory=list)


#: An automatic tree keeps an upper level only if it has at least this many clusters: a top level
#: of one or two clusters says nothing (593 values in the paper's ratios gave 48, 5, 1).
MIN_TOP_CLUSTERS = 3


def auto_levels(n_values: int) -> list[int]:
    """Level sizes in the paper's ratios to the number of values; each at least 1 and at most the
    level below; upper levels of fewer than ``MIN_TOP_CLUSTERS`` clusters are left out (the first
    level always stays)."""
    sizes: list[int] = []
    below = n_values
    for paper in PAPER_SIZES[1:]:
        k = max(1, min(below, round(n_values * paper / PAPER_SIZES[0])))
        sizes.append(k)
        below = k
    while len(sizes) > 1 and sizes[-1] < MIN_TOP_CLUSTERS:
        sizes.pop()
    return sizes


def parse_levels(spec: str, n_values: int) -> list[int]:
    if spec == "auto":
        return auto_levels(n_values)
    try:
        sizes = [int(s) for s in spec.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--levels {spec!r}: give 'auto' or sizes such as 266,26,5") from None
    if not sizes or any(k < 1 for k in sizes):
        raise UserError(f"--levels {spec!r}: sizes must be positive integers")
    if any(a < b for a, b in zip(sizes, sizes[1:], strict=False)):
        raise UserError(f"--levels {spec!r}: sizes must not grow from the first level up")
    if sizes[0] > n_values:
        raise UserError(
            f"--levels {spec!r}: {n_values} values pass the privacy thresholds, "
            f"so the first level can have at most {n_values} clusters"
        )
    return sizes


#: Up to this many points a level is clustered with full-batch (Lloyd) k-means: a mini-batch of
#: 4,096 rows would hold all of them anyway, so each mini-batch step would cost a full pass while
#: only estimating it (rows drawn with replacement) and never settling in a local minimum.
FULL_BATCH_MAX = 4096


def restarts(n_points: int) -> int:
    """k-means starts for a level of ``n_points`` points (the best one is kept)."""
    return 10 if n_points <= FULL_BATCH_MAX else 3


def kmeans_labels(
    x: Matrix, k: int, weights: npt.NDArray[np.float64] | None, seed: int
) -> npt.NDArray[np.int64]:
    """Labels from the Rust k-means; empty clusters cannot be returned (labels are renumbered).

    Small inputs (every level of a value tree) get full-batch Lloyd k-means, each of its
    restarts run to convergence and the lowest final inertia kept, as scikit-learn's ``KMeans``
    does; larger ones (task texts) the mini-batch k-means."""
    if k >= len(x):
        return np.arange(len(x), dtype=np.int64)
    xs = np.ascontiguousarray(x, dtype=np.float32)
    km: KMeans | MiniBatchKMeans
    if len(x) <= FULL_BATCH_MAX:
        km = KMeans(n_clusters=k, n_init=restarts(len(x)), random_state=seed)
    else:
        km = MiniBatchKMeans(
            n_clusters=k,
            batch_size=FULL_BATCH_MAX,
            n_init=restarts(len(x)),
            max_iter=300,
            random_state=seed,
        )
    km.fit(xs, sample_weight=weights)
    labels = np.asarray(km.labels_, dtype=np.int64)
    _, dense = np.unique(labels, return_inverse=True)
    return dense.astype(np.int64)


def _centroids(
    x: Matrix, labels: npt.NDArray[np.int64], w: npt.NDArray[np.float64], k: int
) -> Matrix:
    sums = np.zeros((k, x.shape[1]), dtype=np.float64)
    np.add.at(sums, labels, x * w[:, None])
    return l2_normalise(sums)


def build_tree(
    values: Sequence[str],
    counts: Sequence[int],
    vectors: Matrix,
    levels: Sequence[int],
    *,
    weighted: bool = False,
    seed: int = 0,
    namer: Namer | None = None,
    prefix: str = "ai_values",
) -> list[Node]:
    """Nodes of every level, level 0 (the values) first. Level L clusters the centroids of level
    L-1, weighted by what they stand for: their conversation counts when ``weighted``, else their
    number of values (so every level clusters the values themselves, one vote each)."""
    cnt = np.asarray(counts, dtype=np.float64)
    nodes: list[Node] = [
        Node(v, v, "", 0, float(c), [v], vectors[i])
        for i, (v, c) in enumerate(zip(values, cnt, strict=True))
    ]
    weight_of = dict(zip(values, cnt.tolist(), strict=True))
    below = nodes
    votes = cnt if weighted else np.ones(len(values))
    for level, k in enumerate(levels, start=1):
        x = np.stack([n.centroid for n in below])
        labels = kmeans_labels(x, k, votes, seed + level)
        k_eff = int(labels.max()) + 1
        cents = _centroids(x, labels, votes, k_eff)
        groups: list[list[Node]] = [[] for _ in range(k_eff)]
        for node, lab in zip(below, labels, strict=True):
            groups[lab].append(node)
        new_votes = np.zeros(k_eff)
        np.add.at(new_votes, labels, votes)
        level_nodes = []
        for j, kids in enumerate(groups):
            members = sorted(
                (m for kid in kids for m in kid.members),
                key=lambda v: (-weight_of[v], v),
            )
            cid = f"{prefix}:l{level}:{uuid.uuid5(_ID_NAMESPACE, chr(10).join(sorted(members)))}"
            node = Node(
                cid,
                members[0],
                "",
                level,
                float(sum(kid.weight for kid in kids)),
                members,
                cents[j],
                children=[kid.cluster_id for kid in kids],
            )
            for kid in kids:
                kid.parent = cid
            level_nodes.append(node)
        _name(level_nodes, namer)
        nodes.extend(level_nodes)
        below, votes = level_nodes, new_votes
    return nodes


def _name(level_nodes: list[Node], namer: Namer | None, shown: int = 12) -> None:
    """Heaviest member by default (already set); an LLM name and description when configured,
    shown the cluster's heaviest members and those of its nearest sibling (Clio's contrast)."""
    if namer is not None and len(level_nodes) > 1:
        cents = np.stack([n.centroid for n in level_nodes])
        sims = cents @ cents.T
        np.fill_diagonal(sims, -np.inf)
        for i, node in enumerate(level_nodes):
            near = level_nodes[int(np.argmax(sims[i]))]
            node.name, node.description = namer(node.members[:shown], near.members[:shown])
    elif namer is not None:
        level_nodes[0].name, level_nodes[0].description = namer(level_nodes[0].members[:shown], [])
    if namer is None:
        for node in level_nodes:
            node.description = "Most frequent values: " + ", ".join(node.members[:5]) + "."
    _dedupe_names(level_nodes)


def _dedupe_names(level_nodes: list[Node]) -> None:
    seen: dict[str, int] = {}
    for node in sorted(level_nodes, key=lambda n: -n.weight):
        k = seen.get(node.name, 0)
        seen[node.name] = k + 1
        if k:
            node.name = f"{node.name} ({k + 1})"


def write_tree(nodes: Sequence[Node], path: Path) -> None:
    """The published shape: values first, each level after, shares rounded to 3 decimals."""
    total = sum(n.weight for n in nodes if n.level == 0) or 1.0
    with atomic_open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(TREE_COLUMNS)
        for n in sorted(nodes, key=lambda n: (n.level, n.parent, -n.weight, n.cluster_id)):
            pct = round(100.0 * n.weight / total, 3)
            w.writerow([n.cluster_id, n.description, n.name, n.level, n.parent, pct])


def leaf_paths(nodes: Sequence[Node]) -> dict[str, list[str]]:
    """value -> names of its clusters at levels 1, 2, ..."""
    by_id = {n.cluster_id: n for n in nodes if n.level > 0}
    out: dict[str, list[str]] = {}
    for n in nodes:
        if n.level == 0:
            path, parent = [], n.parent
            while parent:
                node = by_id[parent]
                path.append(node.name)
                parent = node.parent
            out[n.name] = path
    return out
