"""The taxonomy stage's settings and the summary it writes (taxonomy.json)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from valuescope.schema import DEFAULT_MIN_CONVERSATIONS, DEFAULT_MIN_USERS
from valuescope.taxonomy.embeddings import DEFAULT_EMBEDDER, DEFAULT_TASK_EMBEDDER
from valuescope.taxonomy.frameworks import DEFAULT_FRAMEWORKS


@dataclass
class TaxonomyOptions:
    levels: str = "auto"  # "auto" or sizes such as "266,26,5"
    embedder: str = DEFAULT_EMBEDDER  # for the values
    task_embedder: str = DEFAULT_TASK_EMBEDDER  # for the task texts
    embed_url: str | None = None
    cache_dir: Path | None = None
    namer: str = "none"  # none | anthropic | openai
    namer_model: str | None = None
    namer_url: str | None = None
    min_conversations: int = DEFAULT_MIN_CONVERSATIONS
    min_users: int = DEFAULT_MIN_USERS
    weighted: bool = False  # weight values by conversation counts (lowered agreement: docs)
    task_clusters: str = "auto"  # auto | none | K
    reference: str | None = None  # "vitw" or a values_tree.csv path
    frameworks: str = DEFAULT_FRAMEWORKS  # "none" or names such as "schwartz,rokeach"
    seed: int = 0
    #: Write the clustered copy of the features (demo skips it: its corpus has task clusters).
    clustered_copy: bool = True


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
    #: values mapped onto the reference tree, and those left unmapped (below the floor)
    n_reference_mapped: int | None = None
    n_reference_unmapped: int | None = None
    reference_min_similarity: float | None = None
