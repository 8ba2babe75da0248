"""Values stated outright, relative to how often they are expressed at all (appendix B.6).

Plain Python on the engine's published rows, written with the csv module: building an Arrow
table from Python objects would load pandas (pyarrow checks for it), a second of start-up that
`valuescope analyze` otherwise never pays."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from typing import Any

#: Interval coverage of the stated-outright ratio, and its normal quantile.
LEVEL = 0.95
Z = 1.959963984540054

COLUMNS = ("value", "n_expressed", "n_explicit", "ratio", "ratio_low", "ratio_high")


def wilson(x: int, n: int, z: float = Z) -> tuple[float, float]:
    """Wilson score interval of the proportion x / n."""
    if n <= 0:
        return (math.nan, math.nan)
    p = x / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (max(0.0, centre - half), min(1.0, centre + half))


def explicit_values(
    expressed: Sequence[tuple[str, int]], explicit: Sequence[tuple[str, int]]
) -> list[dict[str, Any]]:
    """Per value published in both lists ((value, conversations) pairs): conversations where it
    is expressed, where it is stated explicitly, their ratio with a Wilson interval; highest
    lower bound first (a ratio measured on few conversations does not outrank a well-measured
    one)."""
    n_of = dict(expressed)
    rows: list[dict[str, Any]] = []
    for value, n_explicit in explicit:
        n = n_of.get(value)
        if not n:
            continue
        # the extractor may state a value it did not also list as expressed: the ratio is capped
        x = min(n_explicit, n)
        lo, hi = wilson(x, n)
        rows.append(
            {
                "value": value,
                "n_expressed": n,
                "n_explicit": n_explicit,
                "ratio": x / n,
                "ratio_low": lo,
                "ratio_high": hi,
            }
        )
    rows.sort(key=lambda r: (-r["ratio_low"], -r["ratio"], r["value"]))
    return rows


def explicit_values_csv(rows: Sequence[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for r in rows:
        w.writerow([r[c] for c in COLUMNS])
    return buf.getvalue()
