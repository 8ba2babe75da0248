"""The report's content model: sections of readings, figures and tables, and the caps that keep
every section the same size however large the analysis."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

TOP = 20  # bars in a top-values chart, rows in a table
PANELS = 6  # small multiples in an association figure
PER_PANEL = 5  # values per panel
HEAT_ROWS, HEAT_COLS = 15, 10
CV_N = 10
MAX_MODELS = 8
TAIL_CUTOFF = 0.04  # percent of conversations: the paper's long-tail line
TREE_CHILDREN = 5
CLOSE_PP = 0.5  # percentage points: a reference difference below this is "close"
CREDIT_URLS = {
    "dataset": "https://huggingface.co/datasets/Anthropic/values-in-the-wild",
    "paper": "https://arxiv.org/abs/2504.15236",
    "clio": "https://arxiv.org/abs/2412.13678",
    "licence": "https://creativecommons.org/licenses/by/4.0/",
}

TITLES = {
    "headline": "Headline numbers",
    "values": "Top values",
    "tail": "The long tail",
    "taxonomy": "Taxonomy",
    "responses": "Response types",
    "associations": "Associations",
    "invariance": "Context invariance",
    "mirroring": "Mirroring",
    "models": "Cross-model comparison",
    "within_tasks": "Model differences within tasks",
    "explicit": "Explicit values by response type",
    "pairs": "Value pairs: mirroring, supporting, opposing",
    "watch": "Values to watch",
    "reference": "Reference comparison",
    "privacy": "Privacy",
    "validity": "Validity",
    "method": "Method",
}


@dataclass
class Table:
    caption: str
    header: list[str]
    rows: list[list[str]]
    numeric: int = 1  # columns from this index on are right-aligned numbers
    open: bool | None = None  # shown unfolded in HTML; None: only when short


@dataclass
class Figure:
    svg: str
    caption: str


Block = str | Figure | Table  # a paragraph of reading, a figure or a table, in reading order


@dataclass
class Section:
    id: str
    title: str
    cards: list[tuple[str, str]] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)  # (text, url): credits only

    def para(self, text: str) -> None:
        self.blocks.append(text)

    def figure(self, svg: str, caption: str) -> None:
        self.blocks.append(Figure(svg, caption))

    def table(self, t: Table) -> None:
        self.blocks.append(t)


def new_section(key: str) -> Section:
    return Section(id=key, title=TITLES[key])


def not_computed(s: Section, why: str) -> Section:
    s.para(f"Not computed: {why}")
    return s


def finite(x: Any) -> bool:
    return x is not None and isinstance(x, int | float) and math.isfinite(x)
