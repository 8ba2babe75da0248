"""The engine against independent oracles: plain-Python counting, statsmodels, scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
from helpers.features import make_rows, to_table
from oracle import RESPONSE_TYPES, Oracle
from statsmodels.stats.contingency_tables import Table
from statsmodels.stats.proportion import proportions_ztest
from valuescope import Engine, bonferroni_threshold, normalize

MIN_C, MIN_U = 8, 4


@pytest.fixture(scope="module")
def case():
    rows = make_rows(4000, seed=7, bad_rate=0.03)
    e = Engine(min_conversations=MIN_C, min_users=MIN_U)
    rejects = e.update(to_table(rows))
    return rows, Oracle(rows, min_c=MIN_C, min_u=MIN_U), e.result(), rejects


def test_summary_counts(case):
    rows, o, r, rejects = case
    s = r["summary"]
    assert s["n_rows"] == len(rows)
    assert s["n_conversations"] == o.n
    assert s["n_not_subjective"] == o.not_subjective
    assert s["rejected_by_reason"] == dict(o.rejected)
    assert s["n_rows"] == o.n + o.not_subjective + sum(o.rejected.values())
    assert s["n_with_human_values"] == o.with_any("human_values")
    assert s["n_with_ai_values"] == o.with_any("ai_values")
    assert math.isclose(s["mean_ai_values"], o.mean_len("ai_values"), rel_tol=1e-12)
    assert math.isclose(s["mean_human_values"], o.mean_len("human_values"), rel_tol=1e-12)
    # every rejected row is reported with its index and reason
    assert rejects.num_rows == sum(o.rejected.values())
    for rej in rejects.to_pylist():
        assert rows[rej["row"]]["conversation_id"] == rej["conversation_id"]


@pytest.mark.parametrize("col", ["ai_values", "human_values", "ai_values_explicit"])
def test_value_frequencies(case, col):
    _, o, r, _ = case
    got = [tuple(d.values()) for d in r[col].to_pylist()]
    want = o.frequencies(col)
    assert [g[:2] for g in got] == [w[:2] for w in want]
    for g, w in zip(got, want, strict=True):
        assert math.isclose(g[2], w[2], rel_tol=1e-12)
        assert math.isclose(g[3], w[3], rel_tol=1e-12)
    # the thresholds bite in this data: something was suppressed, and reported as a count
    assert r["summary"]["suppressed"][col] == len(o.counts(col)) - len(want)


PUBLISHED = [
    ("ai_values", "task_cluster"),
    ("human_values", "ai_values"),
    ("ai_values", "response_type"),
    ("human_values", "response_type"),
    ("ai_values", "model"),
    ("response_type", "model"),
]


@pytest.mark.parametrize("a,b", PUBLISHED)
def test_tables_against_statsmodels_and_scipy(case, a, b):
    _, o, r, _ = case
    name = f"{a}__{b}"
    cells = o.cells(a, b)
    rows_k = sorted({x for x, _ in cells})
    cols_k = sorted({y for _, y in cells})
    dense = np.zeros((len(rows_k), len(cols_k)))
    for (x, y), (n, _) in cells.items():
        dense[rows_k.index(x), cols_k.index(y)] = n
    resid = Table(dense, shift_zeros=False).standardized_resids
    resid = np.asarray(resid)
    chi2, p, dof, expected = scipy.stats.chi2_contingency(dense, correction=False)
    m = len(rows_k)
    z = bonferroni_threshold(0.05, m)
    assert math.isclose(z, scipy.stats.norm.isf(0.05 / (2 * m)), rel_tol=1e-12)

    got = {(d["row"], d["col"]): d for d in r[f"tables/{name}"].to_pylist()}
    want = {k: v for k, v in cells.items() if o.passes(*v)}
    assert got.keys() == want.keys()
    assert len(got) < len(cells), "thresholds should suppress some cells in this data"
    for (x, y), d in got.items():
        i, j = rows_k.index(x), cols_k.index(y)
        assert d["observed"] == cells[(x, y)][0]
        assert math.isclose(d["expected"], expected[i, j], rel_tol=1e-9)
        assert math.isclose(d["adjusted_residual"], resid[i, j], rel_tol=1e-9)
        assert d["significant"] == (abs(resid[i, j]) > z)

    t = {d["table"]: d for d in r["table_tests"].to_pylist()}[name]
    assert t["dof"] == dof
    assert math.isclose(t["chi2"], chi2, rel_tol=1e-9)
    assert math.isclose(t["p_value"], p, rel_tol=1e-6, abs_tol=1e-300)
    assert t["n"] == dense.sum()
    assert t["n_tests"] == m
    assert t["suppressed_cells"] == len(cells) - len(want)
    assert math.isclose(t["threshold"], z, rel_tol=1e-12)


def test_paper_bonferroni_threshold():
    assert round(bonferroni_threshold(0.05, 3307), 4) == 4.3269


def test_n_tests_parameter_sets_threshold():
    rows = make_rows(500, seed=3)
    e = Engine(min_conversations=1, min_users=1, n_tests=3307)
    e.update(to_table(rows))
    thresholds = e.result()["table_tests"].column("threshold").to_pylist()
    assert all(round(t, 4) == 4.3269 for t in thresholds)


def test_invariance(case):
    _, o, r, _ = case
    got = {(d["value"], d["context"]): d for d in r["invariance"].to_pylist()}
    for context in ("task_cluster", "response_type", "model"):
        want = o.invariance(context)
        assert want, context
        mine = {v: d for (v, c), d in got.items() if c == context}
        assert mine.keys() == want.keys()
        for v, (cv, k) in want.items():
            assert math.isclose(mine[v]["cv"], cv, rel_tol=1e-9)
            assert mine[v]["n_categories"] == k


def test_response_types_and_mirroring(case):
    _, o, r, _ = case
    n_h = o.with_any("human_values")
    by_rt = {d["response_type"]: d for d in r["response_types"].to_pylist()}
    assert list(by_rt) == [t for t in RESPONSE_TYPES if t in by_rt]
    for t, d in by_rt.items():
        rows = [x for x in o.analysed if x["_rt"] == t]
        assert d["n_conversations"] == len(rows)
        assert math.isclose(d["pct_all"], 100 * len(rows) / o.n)
        wh = [x for x in rows if x["human_values"]]
        assert d["n_with_human_values"] == len(wh)
        assert math.isclose(d["pct_with_human_values"], 100 * len(wh) / n_h)
    mir = o.mirroring()
    got = {d["response_type"]: d for d in r["mirroring"].to_pylist()}
    assert got.keys() == {t for t, v in mir.items() if o.passes(v[0], v[1])}
    for t, d in got.items():
        n, _, k, ku = mir[t]
        assert d["n_conversations"] == n
        if k == 0 or o.passes(k, ku):
            assert d["n_mirrored"] == k
            assert math.isclose(d["pct_mirrored"], 100 * k / n)
        else:
            assert d["n_mirrored"] is None


def test_models_and_two_proportion_z(case):
    _, o, r, _ = case
    model_n = {k: v for k, v in o.counts("model").items() if o.passes(*v)}
    models = {d["model"]: d for d in r["models"].to_pylist()}
    assert models.keys() == model_n.keys()
    for m, d in models.items():
        rows = [x for x in o.analysed if m in x["model"]]
        assert d["n_conversations"] == len(rows)
        assert math.isclose(d["mean_ai_values"], sum(len(x["ai_values"]) for x in rows) / len(rows))
    cells = o.cells("response_type", "model")
    comp = [d for d in r["model_comparison"].to_pylist() if d["feature"] == "response_type"]
    assert comp
    for d in comp:
        xa = cells.get((d["value"], d["model_a"]), (0,))[0]
        xb = cells.get((d["value"], d["model_b"]), (0,))[0]
        na, nb = model_n[d["model_a"]][0], model_n[d["model_b"]][0]
        assert (d["x_a"], d["x_b"], d["n_a"], d["n_b"]) == (xa, xb, na, nb)
        z, p = proportions_ztest([xa, xb], [na, nb])
        assert math.isclose(d["z"], z, rel_tol=1e-9)
        assert math.isclose(d["p_value"], p, rel_tol=1e-6)


@pytest.mark.parametrize(
    "raw",
    [
        "  Honesty ",
        "Human\t\tAgency",
        "ｃｌａｒｉｔｙ",
        "ΟΔΟΣ",
        "a\u00a0b",
        "x\u2003 y",
        "İstanbul",
    ],
)
def test_normalize_matches_python(raw):
    assert normalize(raw) == " ".join(
        __import__("unicodedata").normalize("NFKC", raw).lower().split()
    )


def test_model_differences_are_judged_under_one_bonferroni_threshold(case):
    """The engine decides significance: |z| against Phi^-1(1 - alpha / 2m), m = every
    comparison in the table (pairs of models x values, both features), threshold by scipy."""
    _, _, r, _ = case
    rows = r["model_comparison"].to_pylist()
    assert rows
    alpha = r["summary"]["thresholds"]["alpha"]
    zstar = scipy.stats.norm.isf(alpha / (2 * len(rows)))
    for d in rows:
        assert math.isclose(d["threshold"], zstar, rel_tol=1e-9)
        if d["z"] is None:
            assert d["significant"] is None
        else:
            assert d["significant"] == (abs(d["z"]) > zstar)
