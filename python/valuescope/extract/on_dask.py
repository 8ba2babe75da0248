"""Extraction on a Dask cluster: one task per conversation file, all sharing one answer cache.

    from dask.distributed import Client
    from valuescope.extract.on_dask import extract
    client = Client("tcp://scheduler:8786")
    extract(["a.jsonl", "b.jsonl"], "features/", provider="anthropic", model="...")

Needs the optional extra: ``pip install 'valuescope[dask]'``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from valuescope._dask_support import import_dask, n_workers
from valuescope.errors import UserError
from valuescope.layout import EXTRACT_CACHE_DIR


def _extract_part(src: str, out: str, options: dict[str, Any], fmt: str) -> dict[str, Any]:
    """One input file extracted on a worker; the answer cache is the shared one."""
    from dataclasses import asdict

    from valuescope.extract.options import ExtractOptions
    from valuescope.extract.run import run_extract

    summary = run_extract([src], out, ExtractOptions(**options), fmt)
    return asdict(summary)


def extract(
    inputs: Iterable[str | Path],
    out_dir: str | Path,
    *,
    client: Any = None,
    fmt: str = "auto",
    **extract_options: Any,
) -> list[dict[str, Any]]:
    """Extraction over a cluster: one task per conversation file, each writing
    ``out_dir/part-NNNNN.parquet`` (and its rejects beside it), all sharing one answer cache
    (``cache_dir``, default ``out_dir/.valuescope-cache``), so that a rerun after a crash or a
    ``max_cost`` stop pays for nothing twice, whichever worker asked first. ``out_dir`` is then
    the input of ``valuescope analyze``.

    The budget is the cluster's: ``rpm`` and ``tpm`` are split evenly over the workers and
    ``max_cost`` over the files (a file's unused share is not lent to another). The cache is
    SQLite: ``cache_dir`` must be on a disk that every worker sees with working file locks (a
    local disk for a LocalCluster; not NFS). Returns each file's summary."""
    dask_mod, _ = import_dask()
    srcs = [str(p) for p in inputs]
    if not srcs:
        raise UserError("no conversation files given")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    opts = dict(extract_options)
    opts.setdefault("cache_dir", str(out_dir / EXTRACT_CACHE_DIR))
    opts.setdefault("progress", False)
    if client is None:
        with contextlib.suppress(ValueError, ImportError):
            from distributed import get_client

            client = get_client()
    workers = min(n_workers(client), len(srcs))
    for name in ("rpm", "tpm"):
        if opts.get(name):
            opts[name] = opts[name] / workers
    if opts.get("max_cost"):
        opts["max_cost"] = opts["max_cost"] / len(srcs)
    tasks = [
        dask_mod.delayed(_extract_part, pure=False)(
            src, str(out_dir / f"part-{i:05d}.parquet"), opts, fmt
        )
        for i, src in enumerate(srcs)
    ]
    if client is not None:
        return list(client.gather(client.compute(tasks)))
    return list(dask_mod.compute(*tasks))
