"""Value frameworks on the taxonomy: Schwartz's ten basic values and Rokeach's eighteen terminal
and eighteen instrumental values (names from the literature, definitions written for this
project, in data/frameworks.csv), each placed on the user's value tree by embedding similarity,
as the paper places them on its own (Schwartz's "stimulation" lands near "intellectual curiosity"
and "playfulness and humor")."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from importlib import resources
from typing import Any

import numpy as np

from valuescope.embed import Embedder

FRAMEWORKS_FILE = "data/frameworks.csv"
MAPPING_FILE = "framework_mapping.csv"
MAPPING_COLUMNS = (
    "framework",
    "framework_value",
    "tree_level",
    "rank",
    "cluster",
    "cluster_id",
    "similarity",
)
#: Nearest clusters kept per framework value and level.
NEAREST = 3


def load_frameworks() -> list[tuple[str, str, str]]:
    """(framework, value, definition) rows of the shipped reference lists."""
    text = resources.files("valuescope").joinpath(FRAMEWORKS_FILE).read_text("utf-8")
    return [
        (r["framework"], r["value"], r["definition"]) for r in csv.DictReader(text.splitlines())
    ]


def map_frameworks(nodes: Sequence[Any], emb: Embedder, k: int = NEAREST) -> list[list[Any]]:
    """For every framework value and every level of the tree above the values: its k nearest
    clusters by cosine similarity of the embedding of "value: definition" to the centroids."""
    fws = load_frameworks()
    x = emb.embed([f"{v}: {d}" for _, v, d in fws])
    rows: list[list[Any]] = []
    for level in sorted({n.level for n in nodes if n.level >= 1}):
        level_nodes = [n for n in nodes if n.level == level]
        sims = x @ np.stack([n.centroid for n in level_nodes]).T
        for i, (fw, value, _) in enumerate(fws):
            order = np.argsort(-sims[i], kind="stable")[:k]
            for rank, j in enumerate(order, start=1):
                n = level_nodes[int(j)]
                rows.append(
                    [fw, value, level, rank, n.name, n.cluster_id, round(float(sims[i, j]), 6)]
                )
    return rows
