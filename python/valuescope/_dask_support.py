"""Dask (an optional extra), imported only where a command asks for it; the size of a cluster."""

from __future__ import annotations

import os
from typing import Any

from valuescope.errors import UserError


def import_dask():
    try:
        import dask
        import distributed
    except ImportError:
        raise UserError("Dask is not installed: pip install 'valuescope[dask]'") from None
    return dask, distributed


def n_workers(client: Any) -> int:
    if client is None:
        return os.cpu_count() or 1
    return max(1, len(client.scheduler_info().get("workers", {})))
