"""valuescope: which values do language models express in real conversations?

The statistics engine is native (``valuescope._core``, Rust). This package adds the pipeline's
stages around it, one subpackage each: ``extract`` (chat logs -> features), ``taxonomy`` (the value
tree), ``analyze`` (the statistics) and ``report``; ``pipeline`` runs them in order and ``cli``
is the command line. The names below are the public API; the stages' entry points are imported
only when first used, so that ``import valuescope`` stays as light as the engine.
"""

from __future__ import annotations

import importlib
from typing import Any

from valuescope._core import (
    STATE_FORMAT_VERSION,
    Engine,
    KMeans,
    MiniBatchKMeans,
    __version__,
    bonferroni_threshold,
    normalize,
)
from valuescope.errors import ParquetReadError, SchemaError, UserError, ValuescopeError

#: name -> module that defines it, imported on first use
_STAGES = {
    "run_extract": "valuescope.extract.run",
    "ExtractOptions": "valuescope.extract.options",
    "run_taxonomy": "valuescope.taxonomy.run",
    "TaxonomyOptions": "valuescope.taxonomy.options",
    "analyze_files": "valuescope.analyze.run",
    "AnalyzeOptions": "valuescope.analyze.options",
    "write_report": "valuescope.report",
    "run_pipeline": "valuescope.pipeline",
}


def __getattr__(name: str) -> Any:
    module = _STAGES.get(name)
    if module is None:
        raise AttributeError(f"module 'valuescope' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "STATE_FORMAT_VERSION",
    "AnalyzeOptions",
    "Engine",
    "ExtractOptions",
    "KMeans",
    "MiniBatchKMeans",
    "ParquetReadError",
    "SchemaError",
    "TaxonomyOptions",
    "UserError",
    "ValuescopeError",
    "__version__",
    "analyze_files",
    "bonferroni_threshold",
    "normalize",
    "run_extract",
    "run_pipeline",
    "run_taxonomy",
    "write_report",
]
