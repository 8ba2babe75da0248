"""The validity statistics against independent oracles, to 1e-9: statsmodels' Wilson interval and
``cohens_kappa``, the PyPI ``krippendorff`` package (nominal, and with the MASI distance passed
as its custom metric), and a brute-force alpha written here from the definition (all pairs of
pairable codes, no coincidence matrix), all with missing judgments."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from helpers.validate import brute_alpha
from hypothesis import given, settings
from hypothesis import strategies as st
from statsmodels.stats.inter_rater import cohens_kappa
from statsmodels.stats.proportion import proportion_confint
from valuescope.validate import stats

krippendorff = pytest.importorskip("krippendorff")


@settings(deadline=None)  # correctness, not speed: a busy machine must not fail it
@given(st.integers(0, 500), st.integers(1, 500))
def test_wilson_equals_statsmodels(k: int, n: int) -> None:
    k = min(k, n)
    low, high = stats.wilson(k, n)
    ref = proportion_confint(k, n, alpha=0.05, method="wilson")
    assert low == pytest.approx(ref[0], abs=1e-9)
    assert high == pytest.approx(ref[1], abs=1e-9)


def test_weighted_proportion_equal_weights_is_plain() -> None:
    xs = [True] * 37 + [False] * 5
    w = stats.weighted_proportion((x, 3.5) for x in xs)
    p = stats.proportion(xs)
    assert w.p == pytest.approx(p.p, abs=1e-12)
    assert w.n == pytest.approx(42, abs=1e-9)
    assert (w.low, w.high) == pytest.approx((p.low, p.high), abs=1e-12)


def test_weighted_proportion_kish() -> None:
    # two strata: weights 10 and 1; the share and Kish's n_eff by hand
    units = [(True, 10.0)] * 8 + [(False, 10.0)] * 2 + [(True, 1.0)] * 5 + [(False, 1.0)] * 5
    w = stats.weighted_proportion(units)
    assert w.p == pytest.approx((80 + 5) / (100 + 10), abs=1e-12)
    n_eff = 110**2 / (10 * 100 + 10 * 1)
    assert w.n == pytest.approx(n_eff, abs=1e-9)
    ref = proportion_confint(w.p * n_eff, n_eff, method="wilson")
    assert (w.low, w.high) == pytest.approx(ref, abs=1e-9)


codes = st.one_of(st.none(), st.sampled_from(["a", "b", "c", "d"]))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(codes, codes), min_size=2, max_size=60))
def test_cohen_kappa_equals_statsmodels(pairs: list[tuple[str | None, str | None]]) -> None:
    a = [x for x, _ in pairs]
    b = [y for _, y in pairs]
    got = stats.cohen_kappa(a, b)
    both = [(x, y) for x, y in pairs if x is not None and y is not None]
    labels = sorted({c for p in both for c in p})
    if not both:
        assert got["kappa"] is None and got["n"] == 0
        return
    idx = {c: i for i, c in enumerate(labels)}
    table = np.zeros((len(labels), len(labels)))
    for x, y in both:
        table[idx[x], idx[y]] += 1
    ref = cohens_kappa(table, return_results=False)
    if math.isnan(ref) or got["kappa"] is None:
        # statsmodels divides by 1 - pe = 0: kappa undefined on both sides
        assert got["kappa"] is None and (math.isnan(ref) or len(labels) == 1)
        return
    assert got["kappa"] == pytest.approx(ref, abs=1e-9)
    assert got["n"] == len(both)


def _reliability(units: list[list[str | None]], coders: int) -> np.ndarray:
    labels = sorted({c for u in units for c in u if c is not None})
    idx = {c: float(i) for i, c in enumerate(labels)}
    data = np.full((coders, len(units)), np.nan)
    for j, u in enumerate(units):
        for i, c in enumerate(u):
            if c is not None:
                data[i, j] = idx[c]
    return data


@settings(max_examples=200, deadline=None)
@given(
    st.integers(2, 5).flatmap(
        lambda k: st.lists(st.lists(codes, min_size=k, max_size=k), min_size=1, max_size=40)
    )
)
def test_alpha_nominal_equals_krippendorff_package(units: list[list[str | None]]) -> None:
    got = stats.krippendorff_alpha(units)["alpha"]
    data = _reliability(units, len(units[0]))
    pairable = sum(1 for u in units if sum(c is not None for c in u) >= 2)
    distinct = {c for u in units if sum(c is not None for c in u) >= 2 for c in u if c is not None}
    if pairable == 0 or len(distinct) < 2:
        assert got is None  # no pairable values or one value only: alpha undefined
        return
    ref = krippendorff.alpha(reliability_data=data, level_of_measurement="nominal")
    assert got == pytest.approx(ref, abs=1e-9)


def test_alpha_textbook_example() -> None:
    # Krippendorff (2011), "Computing Krippendorff's alpha-reliability", nominal example: 0.743
    raw = [
        "1 2 3 3 2 1 4 1 2 . . .",
        "1 2 3 3 2 2 4 1 2 5 . 3",
        ". 3 3 3 2 3 4 2 2 5 1 .",
        "1 2 3 3 2 4 4 1 2 5 1 .",
    ]
    rows = [[None if x == "." else x for x in r.split()] for r in raw]
    units = [list(u) for u in zip(*rows, strict=True)]
    assert stats.krippendorff_alpha(units)["alpha"] == pytest.approx(0.743, abs=5e-4)


def test_masi_distance_by_hand() -> None:
    f = frozenset
    assert stats.masi(f("ab"), f("ab")) == 0
    assert stats.masi(f(), f()) == 0
    assert stats.masi(f("a"), f("ab")) == pytest.approx(1 - 0.5 * 2 / 3)
    assert stats.masi(f("ab"), f("bc")) == pytest.approx(1 - (1 / 3) * (1 / 3))
    assert stats.masi(f("ab"), f("cd")) == 1
    assert stats.masi(f(), f("a")) == 1


value_sets = st.one_of(st.none(), st.frozensets(st.sampled_from("abcde"), max_size=4))


@settings(max_examples=150, deadline=None)
@given(
    st.integers(2, 4).flatmap(
        lambda k: st.lists(st.lists(value_sets, min_size=k, max_size=k), min_size=1, max_size=25)
    )
)
def test_alpha_masi_equals_brute_force_and_krippendorff_package(units) -> None:
    got = stats.krippendorff_alpha(units, stats.masi)["alpha"]
    ref = brute_alpha(units, stats.masi)
    if ref is None:
        assert got is None
        return
    assert got == pytest.approx(ref, abs=1e-9)
    # the PyPI package with MASI as its metric: sets coded as indices into a value domain
    domain = sorted({c for u in units for c in u if c is not None}, key=sorted)
    if len(domain) < 2:
        return
    index = {c: i for i, c in enumerate(domain)}
    data = np.full((len(units[0]), len(units)), np.nan)
    for j, u in enumerate(units):
        for i, c in enumerate(u):
            if c is not None:
                data[i, j] = index[c]
    table = np.array([[stats.masi(x, y) for y in domain] for x in domain])

    def masi_metric(v1, v2, **_kw):  # the value domain is 0..K-1: values are the indices
        return table[np.asarray(v1, dtype=int), np.asarray(v2, dtype=int)]

    pkg = krippendorff.alpha(
        reliability_data=data,
        value_domain=list(range(len(domain))),
        level_of_measurement=masi_metric,
    )
    assert got == pytest.approx(pkg, abs=1e-9)


def test_confusion_counts() -> None:
    pairs = [("a", "a"), ("a", "b"), ("b", "b"), ("c", "a"), ("a", "b")]
    got = stats.confusion(pairs, ["a", "b"])
    assert got["labels"] == ["a", "b", "c"]
    counted = {(r, c): 0 for r, c in itertools.product("abc", repeat=2)}
    for p in pairs:
        counted[p] += 1
    assert got["matrix"] == [[counted[(r, c)] for c in "abc"] for r in "abc"]
