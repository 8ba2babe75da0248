"""The comparison: for every AI value, human value, response type and explicitly stated AI value
published in both analyses, the two shares of conversations, a pooled two-proportion z-test, and
Bonferroni over all the tests made. Names published on one side only are counted, never paired:
the other side's count for them is suppressed, not zero."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist

from valuescope.diff.read import FEATURES, Side

DEFAULT_ALPHA = 0.05

COLUMNS = (
    "feature",
    "name",
    "n_a",
    "n_conversations_a",
    "pct_a",
    "n_b",
    "n_conversations_b",
    "pct_b",
    "diff_pp",
    "cohens_h",
    "z",
    "p_value",
    "threshold",
    "significant",
)


@dataclass
class Row:
    feature: str
    name: str
    n_a: int
    total_a: int
    n_b: int
    total_b: int
    z: float
    p_value: float
    threshold: float = math.nan
    significant: bool = False

    @property
    def pct_a(self) -> float:
        return 100.0 * self.n_a / self.total_a

    @property
    def pct_b(self) -> float:
        return 100.0 * self.n_b / self.total_b

    @property
    def diff_pp(self) -> float:
        """B's share minus A's, in percentage points."""
        return self.pct_b - self.pct_a

    @property
    def cohens_h(self) -> float:
        """2 asin sqrt(p_b) - 2 asin sqrt(p_a): differences near 0 or 1 weigh more than the
        same points near one half."""
        pa, pb = self.n_a / self.total_a, self.n_b / self.total_b
        return 2.0 * math.asin(math.sqrt(pb)) - 2.0 * math.asin(math.sqrt(pa))

    def cells(self) -> list[object]:
        return [
            self.feature,
            self.name,
            self.n_a,
            self.total_a,
            self.pct_a,
            self.n_b,
            self.total_b,
            self.pct_b,
            self.diff_pp,
            self.cohens_h,
            self.z,
            self.p_value,
            self.threshold,
            "true" if self.significant else "false",
        ]


@dataclass
class Diff:
    a: Side
    b: Side
    alpha: float
    rows: list[Row]
    threshold: float  # |z| above this is significant (Bonferroni over len(rows) tests)
    #: feature -> (published in A only, published in B only): names, each side's own
    only: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict)

    @property
    def n_tests(self) -> int:
        return len(self.rows)

    @property
    def n_significant(self) -> int:
        return sum(r.significant for r in self.rows)


def two_proportion_z(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float]:
    """z = (k2/n2 - k1/n1) / sqrt(p (1 - p) (1/n1 + 1/n2)) with the pooled p = (k1 + k2) /
    (n1 + n2), and its two-sided p-value. Both shares 0% or both 100% leave no variance and no
    difference: z = 0, p = 1."""
    pooled = (k1 + k2) / (n1 + n2)
    var = pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)
    if var <= 0.0:
        return 0.0, 1.0
    z = (k2 / n2 - k1 / n1) / math.sqrt(var)
    # erfc keeps the tail's precision where 1 - Phi(|z|) would round to 0
    return z, math.erfc(abs(z) / math.sqrt(2.0))


def bonferroni_z(alpha: float, m: int) -> float:
    """Two-sided Bonferroni threshold on |z| for m tests: Phi^-1(1 - alpha / (2m))."""
    return -NormalDist().inv_cdf(alpha / (2.0 * max(m, 1)))


def compare(a: Side, b: Side, alpha: float = DEFAULT_ALPHA) -> Diff:
    rows: list[Row] = []
    only: dict[str, tuple[list[str], list[str]]] = {}
    for feature in FEATURES:
        if feature not in a.counts or feature not in b.counts:
            continue
        ca, cb = a.counts[feature], b.counts[feature]
        for name in sorted(ca.keys() & cb.keys()):
            z, p = two_proportion_z(ca[name], a.n_conversations, cb[name], b.n_conversations)
            rows.append(
                Row(feature, name, ca[name], a.n_conversations, cb[name], b.n_conversations, z, p)
            )
        only[feature] = (
            sorted(ca.keys() - cb.keys(), key=lambda v: (-ca[v], v)),
            sorted(cb.keys() - ca.keys(), key=lambda v: (-cb[v], v)),
        )
    threshold = bonferroni_z(alpha, len(rows))
    for r in rows:
        r.threshold = threshold
        r.significant = abs(r.z) > threshold
    rows.sort(key=lambda r: (-abs(r.diff_pp), -abs(r.cohens_h), r.feature, r.name))
    return Diff(a, b, alpha, rows, threshold, only)
