"""`valuescope diff A B --out DIR`: what changed between two analysis directories (two models,
two periods, two prompt versions). Reads only the analyses' published files, so it can show
nothing either analysis suppressed."""

from __future__ import annotations

from pathlib import Path

from valuescope.diff.compare import DEFAULT_ALPHA, Diff, compare
from valuescope.diff.read import read_side
from valuescope.diff.render import write_diff

__all__ = ["DEFAULT_ALPHA", "Diff", "compare", "read_side", "run_diff", "write_diff"]


def run_diff(
    analysis_a: str | Path, analysis_b: str | Path, out: str | Path, alpha: float = DEFAULT_ALPHA
) -> Diff:
    """Compares the two analyses and writes diff.csv, diff.md and diff.html into ``out``."""
    d = compare(read_side(analysis_a), read_side(analysis_b), alpha)
    write_diff(d, Path(out))
    return d
