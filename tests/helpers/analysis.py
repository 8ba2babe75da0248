"""Analysis directories for the scale-out tests: sharded feature files, the CLI in a subprocess,
and the file-by-file comparison that says two runs wrote the same analysis."""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

from helpers.features import make_rows, to_table

REL = 1e-9


SMALL = {"min_conversations": 5, "min_users": 3}


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "valuescope.cli", *args], capture_output=True, text=True
    )


def _num(s: str) -> float | None:
    try:
        return float(s)
    except ValueError:
        return None


def _same_cell(a: str, b: str) -> bool:
    if a == b:
        return True
    x, y = _num(a), _num(b)
    # floats may differ in the last bits (summation order); nothing else may
    return x is not None and y is not None and math.isclose(x, y, rel_tol=REL, abs_tol=1e-12)


def _same_json(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return (
            isinstance(a, int | float)
            and isinstance(b, int | float)
            and math.isclose(a, b, rel_tol=REL, abs_tol=1e-12)
        )
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_json(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def files_of(d: Path) -> set[str]:
    return {str(p.relative_to(d)) for p in d.rglob("*") if p.is_file()}


def assert_same_dir(d1: Path, d2: Path, skip: frozenset[str] = frozenset()) -> None:
    """Every file of two analysis directories: the same names, the same CSV cells in the same
    order, the same JSON; numbers compared with a tight relative tolerance."""
    names = files_of(d1)
    assert names == files_of(d2)
    assert "summary.json" in names and "rejects.csv" in names
    for name in sorted(names - skip):
        a, b = (d / name for d in (d1, d2))
        if name.endswith(".json"):
            assert _same_json(json.loads(a.read_text()), json.loads(b.read_text())), name
        else:
            ra = list(csv.reader(io.StringIO(a.read_text(encoding="utf-8"))))
            rb = list(csv.reader(io.StringIO(b.read_text(encoding="utf-8"))))
            assert len(ra) == len(rb), name
            for x, y in zip(ra, rb, strict=True):
                assert len(x) == len(y) and all(
                    _same_cell(p, q) for p, q in zip(x, y, strict=True)
                ), f"{name}: {x} != {y}"


def write_features(d: Path, n: int = 4000, seed: int = 5) -> Path:
    """Three files with uneven row groups and schema-breaking rows in each."""
    d.mkdir(parents=True, exist_ok=True)
    t = to_table(make_rows(n, seed=seed, bad_rate=0.03))
    a, b = n // 2, n // 2 + n // 8
    pq.write_table(t.slice(0, a), d / "part-0.parquet", row_group_size=350)
    pq.write_table(t.slice(a, b - a), d / "part-1.parquet", row_group_size=10_000)
    pq.write_table(t.slice(b), d / "part-2.parquet", row_group_size=222)
    return d
