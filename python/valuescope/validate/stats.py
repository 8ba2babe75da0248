"""The statistics of validity: Wilson intervals (plain and re-weighted), Cohen's kappa,
Krippendorff's alpha (nominal, or any distance such as MASI for set-valued codes), Jaccard.

Pure Python and numpy, small inputs (a review sample, one code per unit and coder): clarity over
speed. Missing judgments are ``None`` and are left out the way each statistic defines.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: Two-sided 95%: Phi^-1(0.975).
Z95 = 1.959963984540054


@dataclass(frozen=True)
class Proportion:
    """A share with its 95% Wilson interval. ``n`` is the number of judged units, or Kish's
    effective sample size when the share is re-weighted (then ``weighted`` is true)."""

    k: float
    n: float
    p: float | None
    low: float | None
    high: float | None
    weighted: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "n": self.n,
            "p": self.p,
            "ci95": [self.low, self.high],
            "weighted": self.weighted,
        }


def wilson(k: float, n: float, z: float = Z95) -> tuple[float | None, float | None]:
    """Wilson's score interval for k successes in n trials (k and n may be fractional: the
    re-weighted case passes p * n_eff and n_eff)."""
    if n <= 0:
        return None, None
    p = k / n
    z2 = z * z
    denom = 1 + z2 / n
    centre = (p + z2 / (2 * n)) / denom
    half = z * math.sqrt(max(p * (1 - p) / n + z2 / (4 * n * n), 0.0)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def proportion(successes: Iterable[bool]) -> Proportion:
    xs = list(successes)
    n, k = len(xs), sum(1 for x in xs if x)
    low, high = wilson(k, n)
    return Proportion(k, n, k / n if n else None, low, high)


def weighted_proportion(pairs: Iterable[tuple[bool, float]]) -> Proportion:
    """A share re-weighted to the corpus: each unit counts with its sampling weight (stratum
    population / stratum sample). The interval is Wilson's at Kish's effective sample size
    n_eff = (sum w)^2 / sum w^2, the usual design-effect correction for unequal weights."""
    ws = [(bool(ok), float(w)) for ok, w in pairs]
    sw = sum(w for _, w in ws)
    sw2 = sum(w * w for _, w in ws)
    if not ws or sw <= 0:
        return Proportion(0, 0, None, None, None, True)
    p = sum(w for ok, w in ws if ok) / sw
    n_eff = sw * sw / sw2
    low, high = wilson(p * n_eff, n_eff)
    return Proportion(p * n_eff, n_eff, p, low, high, True)


# -- agreement ---------------------------------------------------------------------------------


def cohen_kappa(a: Sequence[Hashable | None], b: Sequence[Hashable | None]) -> dict[str, Any]:
    """Cohen's kappa of two coders over the units both coded (a ``None`` on either side drops
    the unit). Returns kappa (None when undefined: fewer than one unit, or chance agreement 1),
    the observed agreement and the number of units used."""
    if len(a) != len(b):
        raise ValueError("cohen_kappa: the two codings must be of the same units")
    pairs = [(x, y) for x, y in zip(a, b, strict=True) if x is not None and y is not None]
    n = len(pairs)
    if n == 0:
        return {"kappa": None, "observed": None, "n": 0}
    po = sum(1 for x, y in pairs if x == y) / n
    ca = Counter(x for x, _ in pairs)
    cb = Counter(y for _, y in pairs)
    pe = sum(ca[c] * cb.get(c, 0) for c in ca) / (n * n)
    kappa = None if pe >= 1 else (po - pe) / (1 - pe)
    return {"kappa": kappa, "observed": po, "expected": pe, "n": n}


def nominal(x: Any, y: Any) -> float:
    return 0.0 if x == y else 1.0


def jaccard(x: frozenset[Any], y: frozenset[Any]) -> float:
    """|x & y| / |x | y|, 1 for two empty sets (they agree: neither names a value)."""
    if not x and not y:
        return 1.0
    return len(x & y) / len(x | y)


def masi(x: frozenset[Any], y: frozenset[Any]) -> float:
    """Passonneau's MASI distance: 1 - Jaccard * monotonicity, the monotonicity 1 for equal sets,
    2/3 when one holds the other, 1/3 when they overlap otherwise, 0 when disjoint."""
    if x == y:
        return 0.0
    if x <= y or y <= x:
        m = 2 / 3
    elif x & y:
        m = 1 / 3
    else:
        m = 0.0
    return 1.0 - jaccard(x, y) * m


def krippendorff_alpha(
    units: Iterable[Sequence[Any]],
    distance: Callable[[Any, Any], float] = nominal,
) -> dict[str, Any]:
    """Krippendorff's alpha over units, each the codes its coders gave (``None``: not coded).

    alpha = 1 - D_o / D_e, with D_o the mean distance between pairable codes within a unit
    (each unit's pairs weighted 1 / (m_u - 1)) and D_e the mean distance between all pairable
    codes. Units with fewer than two codes are not pairable and are left out. Computed over
    distinct codes and their coincidence counts, so it is exact for any distance."""
    coincidence: Counter[tuple[Any, Any]] = Counter()
    totals: Counter[Any] = Counter()
    n_units = 0
    for unit in units:
        codes = [c for c in unit if c is not None]
        m = len(codes)
        if m < 2:
            continue
        n_units += 1
        counts = Counter(codes)
        for c, nc in counts.items():
            totals[c] += nc
            for d, nd in counts.items():
                same = nc * (nd - 1) if c == d else nc * nd
                if same:
                    coincidence[(c, d)] += same / (m - 1)
    n = sum(totals.values())
    if n < 2:
        return {"alpha": None, "n_units": n_units, "n_pairable": n}
    cache: dict[tuple[Any, Any], float] = {}

    def dist(c: Any, d: Any) -> float:
        key = (c, d)
        if key not in cache:
            cache[key] = float(distance(c, d))
        return cache[key]

    observed = sum(w * dist(c, d) for (c, d), w in coincidence.items()) / n
    codes = list(totals)
    expected = 0.0
    for i, c in enumerate(codes):
        for d in codes[i + 1 :]:
            expected += 2 * totals[c] * totals[d] * dist(c, d)
        expected += totals[c] * (totals[c] - 1) * dist(c, c)
    expected /= n * (n - 1)
    alpha = None if expected == 0 else 1 - observed / expected
    return {
        "alpha": alpha,
        "observed_disagreement": observed,
        "expected_disagreement": expected,
        "n_units": n_units,
        "n_pairable": n,
    }


def confusion(pairs: Iterable[tuple[str, str]], labels: Sequence[str]) -> dict[str, Any]:
    """Counts of (row, column) pairs over ``labels`` (plus any label met that is not listed)."""
    counts: Counter[tuple[str, str]] = Counter(pairs)
    seen = list(labels) + sorted({x for p in counts for x in p} - set(labels))
    return {
        "labels": seen,
        "matrix": [[counts.get((r, c), 0) for c in seen] for r in seen],
    }


def mean(xs: Iterable[float]) -> float | None:
    vals = list(xs)
    return sum(vals) / len(vals) if vals else None


def share_equal(pairs: Iterable[tuple[Any, Any]]) -> Proportion:
    return proportion(x == y for x, y in pairs)


def weights_from_strata(
    strata: Mapping[str, Mapping[str, int]], stratum_of: Mapping[str, str]
) -> dict[str, float]:
    """Each item's weight: its stratum's population over its stratum's sample."""
    out: dict[str, float] = {}
    for item, s in stratum_of.items():
        info = strata[s]
        out[item] = info["population"] / info["sampled"] if info["sampled"] else 0.0
    return out
