"""The published taxonomy as a reference: map a user's values onto it by nearest embedding and set
the user's level-1/2/3 shares beside the published ones."""

from __future__ import annotations

import csv
import importlib.resources
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from valuescope.errors import UserError
from valuescope.taxonomy.embeddings import Embedder

COMPARISON_COLUMNS = (
    "level",
    "cluster_id",
    "name",
    "parent_cluster_id",
    "published_pct",
    "user_pct",
    "difference",
)


@dataclass(frozen=True)
class RefNode:
    cluster_id: str
    name: str
    level: int
    parent: str
    pct: float


def load_reference(spec: str) -> list[RefNode]:
    """``vitw`` (the published tree shipped as package data) or a path to a file of that shape."""
    if spec == "vitw":
        res = importlib.resources.files("valuescope") / "data" / "values_tree.csv"
        text = res.read_text(encoding="utf-8")
        source = "vitw"
    else:
        path = Path(spec)
        if not path.is_file():
            raise UserError(f"--reference {spec}: no such file (give vitw or a values_tree.csv)")
        text, source = path.read_text(encoding="utf-8"), spec
    rows = list(csv.DictReader(text.splitlines()))
    try:
        nodes = [
            RefNode(
                r["cluster_id"],
                r["name"],
                int(r["level"]),
                r["parent_cluster_id"],
                float(r["pct_total_occurrences"] or 0),
            )
            for r in rows
        ]
    except (KeyError, ValueError):
        raise UserError(f"{source}: not a values_tree.csv (columns or levels unreadable)") from None
    if not any(n.level == 0 for n in nodes):
        raise UserError(f"{source}: has no level-0 rows (values)")
    return nodes


def map_values(
    values: Sequence[str], ref_values: Sequence[str], embedder: Embedder
) -> tuple[list[str], list[float]]:
    """Each value's nearest reference value (cosine) and the similarity; among equally near
    reference values the identical string wins."""
    if not values:
        return [], []
    xu = embedder.embed(values)
    xr = embedder.embed(ref_values)
    index = {v: i for i, v in enumerate(ref_values)}
    sims = xu @ xr.T
    best = np.argmax(sims, axis=1)
    out, sim = [], []
    for i, v in enumerate(values):
        j = int(best[i])
        k = index.get(v)
        if k is not None and sims[i, k] >= sims[i, j] - 1e-6:
            j = k
        out.append(ref_values[j])
        sim.append(float(sims[i, j]))
    return out, sim


def compare(
    values: Sequence[str],
    counts: Sequence[int],
    ref: Sequence[RefNode],
    embedder: Embedder,
) -> tuple[list[tuple[str, str, float]], list[list[object]]]:
    """(value -> reference value mapping rows, comparison rows for levels >= 1)."""
    leaves = [n for n in ref if n.level == 0]
    by_id = {n.cluster_id: n for n in ref}
    mapped, sims = map_values(values, [n.cluster_id for n in leaves], embedder)
    total = float(sum(counts)) or 1.0
    user: dict[str, float] = {}
    for leaf_id, c in zip(mapped, counts, strict=True):
        node = by_id[leaf_id]
        while node.parent and node.parent in by_id:  # credit every ancestor
            node = by_id[node.parent]
            user[node.cluster_id] = user.get(node.cluster_id, 0.0) + 100.0 * c / total
    rows: list[list[object]] = []
    for n in sorted((n for n in ref if n.level > 0), key=lambda n: (n.level, -n.pct)):
        u = round(user.get(n.cluster_id, 0.0), 3)
        rows.append([n.level, n.cluster_id, n.name, n.parent, n.pct, u, round(u - n.pct, 3)])
    mapping = [(v, m, round(s, 4)) for v, m, s in zip(values, mapped, sims, strict=True)]
    return mapping, rows
