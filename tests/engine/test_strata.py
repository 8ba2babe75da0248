"""The three-way counts and what the engine computes from them: the model comparison within
tasks (statsmodels' StratifiedTable as the oracle), the value pairs' response mix and the
explicit values (plain-Python counting), merged in any order, and privacy."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from helpers.features import assert_same_result, make_rows, merged_shards, to_table
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oracle import RESPONSE_TYPES, Oracle
from statsmodels.stats.contingency_tables import StratifiedTable
from statsmodels.stats.proportion import proportion_confint, proportions_ztest
from valuescope import STATE_FORMAT_VERSION, Engine
from valuescope.errors import StateError

POOLED = object()  # the one stratum of every category that fails the thresholds


def close(got, want, tol=1e-9) -> bool:
    """Equal to 1e-9 (relative, or absolute near zero); None stands for NaN / infinity."""
    if want is None or (isinstance(want, float) and not math.isfinite(want)):
        return got is None
    return got is not None and math.isclose(got, want, rel_tol=tol, abs_tol=tol)


def informative(t) -> bool:
    (a, b), (c, d) = t
    return a + b > 0 and c + d > 0 and a + c > 0 and b + d > 0


def stratified_oracle(tables: list) -> dict:
    """statsmodels on the strata that carry information (a stratum with a zero margin adds
    nothing to the Mantel-Haenszel sums, and makes statsmodels' Breslow-Day NaN)."""
    tables = [t for t in tables if informative(t)]
    none = dict.fromkeys(
        ["odds_ratio", "or_ci_low", "or_ci_high", "cmh", "p_cmh", "breslow_day", "p_breslow_day"]
    )
    if not tables:
        return {**none, "n_strata": 0}
    with np.errstate(all="ignore"):
        s = StratifiedTable([np.asarray(t, dtype=float) for t in tables])
        lo, hi = s.oddsratio_pooled_confint()
        null = s.test_null_odds(correction=False)
        want = {
            "odds_ratio": s.oddsratio_pooled,
            "or_ci_low": lo,
            "or_ci_high": hi,
            "cmh": null.statistic,
            "p_cmh": null.pvalue,
            "breslow_day": None,
            "p_breslow_day": None,
            "n_strata": len(tables),
        }
        # with one stratum the test has no degrees of freedom; at an odds ratio of exactly 1
        # statsmodels' quadratic divides by zero (the engine takes the linear root)
        if len(tables) >= 2 and s.oddsratio_pooled != 1.0:
            eq = s.test_equal_odds(adjust=False)
            want["breslow_day"], want["p_breslow_day"] = eq.statistic, eq.pvalue
    if not math.isfinite(want["cmh"]):
        want["p_cmh"] = None
    return want


def assert_row_matches(got: dict, want: dict) -> None:
    assert got["n_strata"] == want["n_strata"]
    for k in ["odds_ratio", "or_ci_low", "or_ci_high", "cmh", "p_cmh"]:
        assert close(got[k], want[k]), (k, got[k], want[k])
    if want["breslow_day"] is not None or got["n_strata"] < 2:
        for k in ["breslow_day", "p_breslow_day"]:
            assert close(got[k], want[k]), (k, got[k], want[k])


# -- the stratified tests against statsmodels --------------------------------------------------

stratum = st.tuples(st.integers(0, 25), st.integers(0, 25), st.integers(0, 25), st.integers(0, 25))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(strata=st.lists(stratum, min_size=1, max_size=6))
def test_cmh_odds_ratio_and_breslow_day_equal_statsmodels(strata):
    """Each stratum: (m1 with the value, m1 without, m2 with, m2 without), zeros included."""
    rows = []
    for k, counts in enumerate(strata):
        for (model, has), n in zip(
            [("m1", True), ("m1", False), ("m2", True), ("m2", False)], counts, strict=True
        ):
            for _ in range(n):
                i = len(rows)
                rows.append(
                    {
                        "conversation_id": f"c{i}",
                        "user_id": f"u{i}",
                        "model": model,
                        "task_cluster": f"stratum {k}",
                        "ai_values": ["focus"] if has else ["other"],
                        "human_values": [],
                        "response_type": "mild support",
                    }
                )
    e = Engine(min_conversations=1, min_users=1)
    e.update(to_table(rows))
    r = e.result()
    models_present = {row["model"] for row in rows}
    if len(models_present) < 2:
        assert "model_comparison_within_tasks" not in r
        return
    got = [
        d
        for d in r["model_comparison_within_tasks"].to_pylist()
        if d["kind"] == "value" and d["item"] == "focus"
    ]
    xa = sum(s[0] for s in strata)
    xb = sum(s[2] for s in strata)
    if xa + xb == 0:
        assert got == []
        return
    (got,) = got
    tables = [[[a, b], [c, d]] for a, b, c, d in strata]
    assert_row_matches(got, stratified_oracle(tables))
    na, nb = xa + sum(s[1] for s in strata), xb + sum(s[3] for s in strata)
    with np.errstate(all="ignore"):  # no variance: statsmodels' z is NaN, the engine's None
        z, p = proportions_ztest([xa, xb], [na, nb])
    assert close(got["pct_a"], 100 * xa / na) and close(got["pct_b"], 100 * xb / nb)
    if math.isfinite(z):
        assert close(got["z_raw"], z) and close(got["p_raw"], p)


# -- the whole table against plain counting ----------------------------------------------------


def within_oracle(o: Oracle, alpha: float = 0.05) -> list[dict] | None:
    """model_comparison_within_tasks from the rows, one at a time, and statsmodels."""
    models = sorted(k for k, (n, u) in o.counts("model").items() if o.passes(n, u))
    with_model = [r for r in o.analysed if r["model"]]
    if len(models) < 2:
        return None
    if any(r["task_cluster"] for r in with_model):
        col = "task_cluster"
    elif any(r["task"] for r in with_model):
        col = "task"
    else:
        return None
    named = {k for k, (n, u) in o.counts(col).items() if o.passes(n, u)}

    def stratum_of(r):
        (s,) = r[col] or {None}
        return s if s in named else POOLED

    n_model = {m: o.counts("model")[m][0] for m in models}
    rts = [t for t in RESPONSE_TYPES if o.passes(*o.counts("response_type").get(t, (0, set())))]
    values = sorted(
        ((v, n) for v, (n, u) in o.counts("ai_values").items() if o.passes(n, u)),
        key=lambda x: (-x[1], x[0]),
    )
    items = [("response_type", t, "response_type") for t in rts]
    items += [("value", v, "ai_values") for v, _ in values]
    two_way = {c: o.cells(c, "model") for c in ["response_type", "ai_values"]}
    strata = sorted({stratum_of(r) for r in with_model}, key=str)
    rows = []
    for i, ma in enumerate(models):
        for mb in models[i + 1 :]:
            for kind, item, c in items:

                def ok(m, item=item, c=c):
                    cell = two_way[c].get((item, m))
                    return cell is None or o.passes(*cell)

                def has(r, item=item, c=c):
                    return item in r[c] if c == "ai_values" else r["_rt"] == item

                xa = sum(1 for r in with_model if ma in r["model"] and has(r))
                xb = sum(1 for r in with_model if mb in r["model"] and has(r))
                if xa + xb == 0 or not ok(ma) or not ok(mb):
                    continue
                tables = []
                for s in strata:
                    cell = [[0, 0], [0, 0]]
                    for r in with_model:
                        if stratum_of(r) != s:
                            continue
                        m = next(iter(r["model"]))
                        if m in (ma, mb):
                            cell[m == mb][0 if has(r) else 1] += 1
                    tables.append(cell)
                z, p = proportions_ztest([xa, xb], [n_model[ma], n_model[mb]])
                rows.append(
                    {
                        "kind": kind,
                        "item": item,
                        "model_a": ma,
                        "model_b": mb,
                        "pct_a": 100 * xa / n_model[ma],
                        "pct_b": 100 * xb / n_model[mb],
                        "z_raw": z,
                        "p_raw": p,
                        **stratified_oracle(tables),
                    }
                )
    for r in rows:
        r["p_threshold"] = alpha / len(rows)
    return rows


def random_rows(n: int, seed: int, clustered: bool = True) -> list[dict]:
    rows = make_rows(n, seed=seed, bad_rate=0.01)
    rng = random.Random(seed)
    for r in rows:
        # task mixes that differ by model, so that strata matter
        if r["model"] == "model-b" and rng.random() < 0.5:
            r["task_cluster"] = r["task"] = "coding help"
        if not clustered:
            r["task_cluster"] = None
    return rows


@pytest.mark.parametrize("clustered", [True, False])
def test_within_tasks_equals_plain_counting_and_statsmodels(clustered):
    rows = random_rows(3000, seed=5, clustered=clustered)
    min_c, min_u = 20, 5
    e = Engine(min_conversations=min_c, min_users=min_u)
    e.update(to_table(rows))
    r = e.result()
    want = within_oracle(Oracle(rows, min_c=min_c, min_u=min_u))
    assert want, "this data should give a table"
    got = r["model_comparison_within_tasks"].to_pylist()
    key = ("kind", "item", "model_a", "model_b")
    assert [tuple(g[k] for k in key) for g in got] == [tuple(w[k] for k in key) for w in want]
    for g, w in zip(got, want, strict=True):
        assert_row_matches(g, w)
        for k in ["pct_a", "pct_b", "z_raw", "p_raw", "p_threshold"]:
            assert close(g[k], w[k]), k
        assert g["significant_raw"] == (w["p_raw"] < w["p_threshold"])
        if w["p_cmh"] is not None:
            assert g["significant_within"] == (w["p_cmh"] < w["p_threshold"])
    info = r["summary"]["model_comparison_within_tasks"]
    assert info["stratified_by"] == ("task_cluster" if clustered else "task")
    assert info["n_tests"] == len(want)


def test_one_model_gives_no_within_tasks_table():
    rows = [dict(r, model="model-a") for r in random_rows(800, seed=3)]
    e = Engine(min_conversations=5, min_users=3)
    e.update(to_table(rows))
    r = e.result()
    assert "model_comparison_within_tasks" not in r
    assert r["summary"]["model_comparison_within_tasks"] is None


# -- value pairs and explicit values against plain counting -----------------------------------

MIN_C, MIN_U = 8, 4


def planted_pairs(n: int) -> list[dict]:
    """An opposing pair (resisted) and a supporting one, each far above chance."""
    rng = random.Random(4)
    out = []
    for i in range(n):
        resisted = rng.choice(["strong resistance", "mild resistance"])
        supported = rng.choice(["strong support", "mild support", "reframing"])
        human, ai, rt = [
            ("deception", "ethical integrity", resisted),
            ("learning", "patience", supported),
        ][i % 2]
        out.append(
            {
                "conversation_id": f"p{i}",
                "user_id": f"pu{i % 25}",
                "model": "model-a",
                "task_cluster": "tech ethics",
                "ai_values": [ai],
                "ai_values_explicit": [ai] if i % 3 == 0 else None,
                "human_values": [human],
                "response_type": rt,
            }
        )
    return out


@pytest.fixture(scope="module")
def case():
    rows = random_rows(4000, seed=9) + planted_pairs(120)
    e = Engine(min_conversations=MIN_C, min_users=MIN_U)
    e.update(to_table(rows))
    return Oracle(rows, min_c=MIN_C, min_u=MIN_U), e.result()


def shown(mix: list[int], min_c: int) -> list[bool]:
    """The engine's rule for a pair's response-type counts: zero or >= min_conversations, and a
    lone held-back count takes the smallest shown non-zero one with it."""
    s = [c == 0 or c >= min_c for c in mix]
    if s.count(False) == 1:
        nonzero = [i for i in range(len(mix)) if s[i] and mix[i] > 0]
        if nonzero:
            s[min(nonzero, key=lambda i: (mix[i], -i))] = False
    return s


def test_value_pairs_equal_plain_counting(case):
    o, r = case
    cells = r["tables/human_values__ai_values"].to_pylist()
    pairs = [c for c in cells if c["significant"] and c["adjusted_residual"] > 0]
    assert pairs, "this data should have significant pairs"
    got = r["value_pairs"].to_pylist()
    assert [(g["human_value"], g["ai_value"]) for g in got] == [(c["row"], c["col"]) for c in pairs]
    threshold = {t["table"]: t for t in r["table_tests"].to_pylist()}["human_values__ai_values"]
    for g, c in zip(got, pairs, strict=True):
        h, a = c["row"], c["col"]
        mix = [0] * 7
        for row in o.analysed:
            if h in row["human_values"] and a in row["ai_values"]:
                mix[RESPONSE_TYPES.index(row["_rt"])] += 1
        n = sum(mix)
        assert g["n_conversations"] == n == c["observed"]
        assert close(g["residual"], c["adjusted_residual"])
        assert close(g["threshold"], threshold["threshold"])
        ok = shown(mix, MIN_C)
        for i, t in enumerate(RESPONSE_TYPES):
            col = "pct_" + t.replace(" ", "_")
            assert close(g[col], 100 * mix[i] / n if ok[i] else None), col
        top = [i for i in range(7) if ok[i] and mix[i] > 0]
        want_top = RESPONSE_TYPES[max(top, key=lambda i: (mix[i], -i))] if top else None
        assert g["dominant_response_type"] == want_top
        if h == a:
            assert g["pattern"] == "mirroring"
        elif mix[4] + mix[5] > n / 2:
            assert g["pattern"] == "opposing"
        else:
            assert g["pattern"] == "supporting"
    assert {g["pattern"] for g in got} == {"mirroring", "supporting", "opposing"}


def test_explicit_by_response_type_equals_plain_counting(case):
    o, r = case
    got = r["explicit_by_response_type"].to_pylist()
    want = []
    for t in RESPONSE_TYPES:
        rows = [x for x in o.analysed if x["_rt"] == t]
        explicit = [x for x in rows if x["ai_values_explicit"]]
        users = {x["_user"] for x in rows}
        e_users = {x["_user"] for x in explicit}
        if not o.passes(len(rows), users):
            continue
        if explicit and not o.passes(len(explicit), e_users):
            continue
        lo, hi = proportion_confint(len(explicit), len(rows), method="wilson")
        n, k = len(rows), len(explicit)
        want.append((t, n, k, 100 * k / n, 100 * lo, 100 * hi))
    assert [(g["response_type"], g["n_conversations"], g["n_with_explicit"]) for g in got] == [
        w[:3] for w in want
    ]
    for g, w in zip(got, want, strict=True):
        assert close(g["pct_with_explicit"], w[3])
        assert close(g["ci_low"], w[4]) and close(g["ci_high"], w[5])


def test_explicit_values_equal_plain_counting(case):
    o, r = case
    explicit, expressed = o.counts("ai_values_explicit"), o.counts("ai_values")
    want = []
    for v, (n, u) in explicit.items():
        if o.passes(n, u) and v in expressed and o.passes(*expressed[v]):
            m = expressed[v][0]
            lo, hi = proportion_confint(n, m, method="wilson")
            want.append((v, m, n, n / m, lo, hi))
    want.sort(key=lambda w: (-w[3], w[0]))
    got = r["explicit_values"].to_pylist()
    assert [(g["value"], g["n_expressed"], g["n_explicit"]) for g in got] == [w[:3] for w in want]
    for g, w in zip(got, want, strict=True):
        assert close(g["ratio"], w[3]) and close(g["ci_low"], w[4]) and close(g["ci_high"], w[5])
    assert want


# -- merging and the state ---------------------------------------------------------------------

ROWS = random_rows(1500, seed=13)
TABLE = to_table(ROWS)
KW = {"min_conversations": 3, "min_users": 3}
NEW = [
    "model_comparison_within_tasks",
    "value_pairs",
    "explicit_by_response_type",
    "explicit_values",
]
ONE = Engine(**KW)
ONE.update(TABLE)
ONE_RESULT = ONE.result()


def only_new(result: dict) -> dict:
    return {k: v for k, v in result.items() if k in NEW}


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cuts=st.lists(st.integers(0, len(ROWS)), max_size=5),
    order=st.randoms(use_true_random=False),
    via_bytes=st.booleans(),
)
def test_shards_merged_in_any_order_give_one_pass(cuts, order, via_bytes):
    got = merged_shards(KW, TABLE, cuts, order, via_bytes).result()
    assert only_new(got).keys() == only_new(ONE_RESULT).keys() == set(NEW)
    assert_same_result(only_new(got), only_new(ONE_RESULT))


def test_round_trip_and_an_older_state_is_refused_by_version():
    again = Engine.from_bytes(ONE.to_bytes())
    assert_same_result(only_new(again.result()), only_new(ONE_RESULT))
    old = bytearray(ONE.to_bytes())
    old[8:10] = (STATE_FORMAT_VERSION - 1).to_bytes(2, "little")
    with pytest.raises(StateError) as err:
        Engine.from_bytes(bytes(old))
    msg = str(err.value)
    assert f"version {STATE_FORMAT_VERSION - 1}" in msg and f"version {STATE_FORMAT_VERSION}" in msg
