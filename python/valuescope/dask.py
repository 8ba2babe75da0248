"""Deprecated: ``valuescope.dask`` shared its name with the package it wraps. Use
``valuescope.analyze.on_dask`` (analyze, analyze_cli, local_cluster) and
``valuescope.extract.on_dask`` (extract); this alias keeps older code working."""

from __future__ import annotations

import warnings

from valuescope.analyze.on_dask import analyze, analyze_cli, local_cluster
from valuescope.extract.on_dask import extract

warnings.warn(
    "valuescope.dask is deprecated: use valuescope.analyze.on_dask and valuescope.extract.on_dask",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["analyze", "analyze_cli", "extract", "local_cluster"]
