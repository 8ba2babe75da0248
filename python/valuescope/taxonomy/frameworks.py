"""Value frameworks from psychology (Schwartz's basic values, Rokeach's value survey) placed on the
user's value tree: each framework value, embedded as "value: definition", is matched to the
clusters nearest to it at every level of the tree.

A cluster's vector here is the normalised mean of its member values' vectors, one vote per value
(the tree's own unweighted votes), so the mapping can be recomputed from values_tree.csv and the
embedder alone. Only names the tree publishes are written: the tree holds only values above the
privacy thresholds, and its cluster names are made from them (or by the namer from them).
"""

from __future__ import annotations

import csv
import importlib.resources
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from valuescope.atomic import atomic_open
from valuescope.errors import UserError
from valuescope.taxonomy.embeddings import Embedder, Matrix, l2_normalise

#: --frameworks name -> its reference list in valuescope/data/frameworks/
FRAMEWORK_FILES = {
    "schwartz": "schwartz.csv",
    "schwartz-refined": "schwartz_refined.csv",
    "rokeach": "rokeach.csv",
}
DEFAULT_FRAMEWORKS = "schwartz,rokeach"
#: Clusters listed per framework value and level.
TOP_CLUSTERS = 3
MAPPING_COLUMNS = ("framework", "framework_value", "level", "rank", "cluster", "similarity")


@dataclass(frozen=True)
class FrameworkValue:
    framework: str
    value: str
    kind: str
    definition: str

    @property
    def text(self) -> str:
        """What is embedded: the name alone is too short for its sense ("power", "clean")."""
        return f"{self.value}: {self.definition}"


def parse_frameworks(spec: str) -> list[str]:
    """``schwartz,rokeach`` -> the names, in the order given; ``none`` -> []."""
    if spec.strip().lower() == "none":
        return []
    names = list(dict.fromkeys(s.strip().lower() for s in spec.split(",") if s.strip()))
    unknown = [n for n in names if n not in FRAMEWORK_FILES]
    if unknown or not names:
        raise UserError(
            f"--frameworks {spec!r}: give none or a comma-separated list of "
            + ", ".join(FRAMEWORK_FILES)
        )
    return names


def load_framework(name: str) -> list[FrameworkValue]:
    res = importlib.resources.files("valuescope") / "data" / "frameworks" / FRAMEWORK_FILES[name]
    rows = csv.DictReader(res.read_text(encoding="utf-8").splitlines())
    return [FrameworkValue(r["framework"], r["value"], r["kind"], r["definition"]) for r in rows]


def level_vectors(nodes: Sequence) -> dict[int, tuple[list[str], Matrix]]:
    """level -> (published names, unit vectors): level 0 the values themselves, each upper level
    the normalised mean of its member values' vectors."""
    vec = {n.name: n.centroid for n in nodes if n.level == 0}
    out: dict[int, tuple[list[str], Matrix]] = {}
    for level in sorted({n.level for n in nodes}):
        at = [n for n in nodes if n.level == level]
        mats = [np.mean([vec[m] for m in n.members], axis=0) for n in at]
        out[level] = ([n.name for n in at], l2_normalise(np.stack(mats)))
    return out


def map_frameworks(
    nodes: Sequence, values: Sequence[FrameworkValue], embedder: Embedder, top: int = TOP_CLUSTERS
) -> list[tuple[str, str, int, int, str, float]]:
    """Rows of framework_mapping.csv: per framework value and tree level, its ``top`` most
    similar clusters (cosine), most similar first."""
    if not values or not nodes:
        return []
    x = embedder.embed([v.text for v in values])
    rows = []
    for level, (names, mat) in level_vectors(nodes).items():
        sims = x @ mat.T
        for i, fv in enumerate(values):
            best = np.argsort(-sims[i], kind="stable")[:top]
            for rank, j in enumerate(best, start=1):
                sim = round(float(sims[i, j]), 4)
                rows.append((fv.framework, fv.value, level, rank, names[int(j)], sim))
    return rows


def write_framework_mapping(
    nodes: Sequence, frameworks: Sequence[str], embedder: Embedder, path: Path
) -> bool:
    """Writes the mapping for the named frameworks; with none, removes a mapping left by an
    earlier run in the same directory (a report would otherwise show it). True when written."""
    if not frameworks:
        path.unlink(missing_ok=True)
        return False
    values = [fv for name in frameworks for fv in load_framework(name)]
    rows = map_frameworks(nodes, values, embedder)
    with atomic_open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(MAPPING_COLUMNS)
        w.writerows(rows)
    return True
