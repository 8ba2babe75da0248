"""valuescope: which values do language models express in real conversations?

The statistics engine is native (``valuescope._core``, Rust); this package re-exports it and adds
the command line, file handling, extraction, taxonomy and reports.
"""

from valuescope._core import (
    STATE_FORMAT_VERSION,
    Engine,
    KMeans,
    MiniBatchKMeans,
    SchemaError,
    __version__,
    bonferroni_threshold,
    normalize,
)

__all__ = [
    "Engine",
    "KMeans",
    "MiniBatchKMeans",
    "SchemaError",
    "STATE_FORMAT_VERSION",
    "__version__",
    "bonferroni_threshold",
    "normalize",
]
