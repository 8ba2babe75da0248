"""The "Value frameworks" section: Schwartz's and Rokeach's values placed on this analysis's value
tree (framework_mapping.csv, from `valuescope taxonomy`). Left out of the report when the taxonomy
wrote no mapping.

Only cluster names that the tree itself publishes are shown: a mapping row naming anything else
(a mapping left from another tree) is dropped, so the section can name nothing the tree did not.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from typing import Any

from valuescope import layout
from valuescope.errors import UserError
from valuescope.report import figures as fg
from valuescope.report import text as tx
from valuescope.report.load import Analysis, _taxonomy_path
from valuescope.report.model import TOP, Section, Table

TITLE = "Value frameworks"
FRAMEWORK_TITLES = {
    "schwartz": "Schwartz's basic values",
    "schwartz-refined": "Schwartz's refined values",
    "rokeach": "Rokeach's values",
}
#: Cosine similarity of MiniLM vectors below which a match says little (unrelated short
#: phrases land near 0.3-0.5; the reference mapping's floor is 0.6).
WEAK = 0.4


def load_mapping(a: Analysis) -> list[dict[str, Any]]:
    """The mapping's rows whose cluster the tree publishes at that level; [] when either file is
    missing."""
    if not a.taxonomy:
        return []
    path = _taxonomy_path(a.taxonomy_dirs, layout.FRAMEWORK_MAPPING)
    if path is None:
        return []
    published = {(int(r.get("level") or 0), r.get("name")) for r in a.taxonomy}
    out = []
    try:
        # plain csv: every field a string, so that a cluster called "null" or "1" stays itself
        with path.open(encoding="utf-8", newline="") as fh:
            for r in csv.DictReader(fh):
                try:
                    key = (int(r["level"]), r["cluster"])
                    r["similarity"] = float(r["similarity"])
                    r["rank"] = int(r["rank"])
                except (KeyError, TypeError, ValueError):
                    continue
                if key in published and r.get("framework") and r.get("framework_value"):
                    out.append(r)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"{path}: damaged taxonomy file ({type(exc).__name__})") from None
    return out


def frameworks(a: Analysis) -> Section | None:
    mapping = load_mapping(a)
    if not mapping:
        return None
    s = Section(id="frameworks", title=TITLE)
    # framework -> value -> level -> [(rank, cluster, similarity)]
    tree: dict[str, dict[str, dict[int, list[tuple[int, str, float]]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    for r in mapping:
        tree[r["framework"]][r["framework_value"]][int(r["level"])].append(
            (r["rank"], r["cluster"], r["similarity"])
        )
    levels = sorted({int(r["level"]) for r in mapping})
    show = levels[1] if len(levels) > 1 else levels[0]  # the finest cluster level
    panels: list[tuple[str, list[str], list[float], str]] = []
    tables: list[Table] = []
    readings: list[str] = []
    for fw, values in tree.items():
        best = []
        for value, by_level in values.items():
            if by_level.get(show):
                rank, cluster, sim = min(by_level[show])
                best.append((sim, value, cluster))
        best.sort(key=lambda t: -t[0])
        title = FRAMEWORK_TITLES.get(fw, fw)
        if best:
            top = best[:TOP]
            panels.append(
                (
                    title,
                    [f"{v} → {c}" for _, v, c in top],
                    [sim for sim, _, _ in top],
                    fg.PALETTE[len(panels) % len(fg.PALETTE)],
                )
            )
            readings.append(
                f"{title}: "
                + tx.listing([f"{v} lands nearest {c} ({sim:.2f})" for sim, v, c in best[:3]], 3)
            )
        tables.append(_table(title, values, levels))
    for title, labels, sims, color in panels:
        # one figure per framework: small multiples would give ten values the height of 20
        s.figure(
            fg.barh(labels, sims, xlabel="cosine similarity", color=color, fmt="{:.2f}"),
            f"{title}: each value's nearest cluster at level {show} of this analysis's value "
            "tree, by the cosine similarity of its embedded name and definition to the "
            f"cluster's mean value vector (the {len(labels)} closest).",
        )
    s.para(
        "Each value of the frameworks, embedded as its name with a short definition, is matched "
        "to the most similar clusters of this analysis's value tree at every level (three per "
        "level in taxonomy/framework_mapping.csv). "
        + ". ".join(readings)
        + f". Similarities below {WEAK:g} mean no cluster is close: the framework value is "
        "rarely expressed here, or expressed in words the embedder does not relate to it."
    )
    for t in tables:
        s.table(t)
    return s


def _table(
    title: str, values: dict[str, dict[int, list[tuple[int, str, float]]]], levels: list[int]
) -> Table:
    header = ["value"] + [
        "nearest values" if lvl == 0 else f"level {lvl} cluster" for lvl in levels
    ]
    body = []
    for value, by_level in values.items():
        cells = [value]
        for lvl in levels:
            ranked = sorted(by_level.get(lvl, []))
            if lvl == 0:
                cells.append(tx.listing([f"{c} ({sim:.2f})" for _, c, sim in ranked], 3))
            else:
                cells.append(f"{ranked[0][1]} ({ranked[0][2]:.2f})" if ranked else "")
        body.append(cells)
    return Table(title, header, body, numeric=len(header))
