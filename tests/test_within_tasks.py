"""Model differences within task clusters (appendix B.5.3) and the response-type mix of value
pairs, against plain-Python counting and statsmodels' StratifiedTable; merging in any order."""

from __future__ import annotations

import math
import random
from collections import defaultdict

import numpy as np
import pytest
from conftest import make_rows, to_table
from hypothesis import given, settings
from hypothesis import strategies as st
from oracle import Oracle
from statsmodels.stats.contingency_tables import StratifiedTable
from statsmodels.stats.proportion import proportions_ztest
from valuescope import Engine

MIN_C, MIN_U = 8, 4
REL = 1e-9


def close(a, b, rel=REL) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if math.isinf(b) or math.isinf(a):
        return a == b
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-300)


def expected_within(o: Oracle) -> dict:
    """Per (feature, value, model A, model B): the 2x2 strata the engine should test, built by
    plain counting with the same pooling rule (a cluster is a stratum when both models'
    conversations in it pass the thresholds; the rest, and rows with no cluster, are pooled)."""
    models = sorted(k for k, (n, u) in o.counts("model").items() if o.passes(n, u))
    by_mc: dict[tuple[str, str | None], list[dict]] = defaultdict(list)
    users: dict[tuple[str, str | None], set] = defaultdict(set)
    for r in o.analysed:
        m = next(iter(r["model"]), None)
        c = next(iter(r["task_cluster"]), None)
        if m is None:
            continue
        by_mc[(m, c)].append(r)
        users[(m, c)].add(r["_user"])
    feats = {
        "response_type": [k for k, (n, u) in o.counts("response_type").items() if o.passes(n, u)],
        "ai_values": [k for k, (n, u) in o.counts("ai_values").items() if o.passes(n, u)],
    }
    cell = {
        "response_type": o.cells("response_type", "model"),
        "ai_values": o.cells("ai_values", "model"),
    }
    has = {
        "response_type": lambda r, v: r["_rt"] == v,
        "ai_values": lambda r, v: v in r["ai_values"],
    }
    out = {}
    for i, a in enumerate(models):
        for b in models[i + 1 :]:
            clusters = {c for (m, c) in by_mc if c is not None and m in (a, b)}
            named = [
                c
                for c in sorted(clusters)
                if all(
                    o.passes(len(by_mc.get((m, c), [])), users.get((m, c), set())) for m in (a, b)
                )
            ]
            pooled_a = [r for (m, c), rs in by_mc.items() if m == a and c not in named for r in rs]
            pooled_b = [r for (m, c), rs in by_mc.items() if m == b and c not in named for r in rs]
            groups = [(by_mc.get((a, c), []), by_mc.get((b, c), [])) for c in named]
            groups.append((pooled_a, pooled_b))
            for feature, values in feats.items():
                for v in values:
                    ca, cb = cell[feature].get((v, a)), cell[feature].get((v, b))
                    xa, xb = (ca[0] if ca else 0), (cb[0] if cb else 0)
                    if xa + xb == 0:
                        continue
                    if any(c is not None and not o.passes(*c) for c in (ca, cb)):
                        continue
                    tables = []
                    for ra, rb in groups:
                        ya = sum(has[feature](r, v) for r in ra)
                        yb = sum(has[feature](r, v) for r in rb)
                        t = [[ya, len(ra) - ya], [yb, len(rb) - yb]]
                        # strata with an empty margin carry no information (the engine drops them)
                        if min(sum(t[0]), sum(t[1]), ya + yb, len(ra) + len(rb) - ya - yb) > 0:
                            tables.append(t)
                    out[(feature, v, a, b)] = (xa, xb, tables)
    return out


@pytest.fixture(scope="module")
def case():
    rows = make_rows(6000, seed=11)
    e = Engine(min_conversations=MIN_C, min_users=MIN_U)
    e.update(to_table(rows))
    return Oracle(rows, min_c=MIN_C, min_u=MIN_U), e.result()


def test_within_tasks_matches_statsmodels(case):
    o, r = case
    got = {
        (x["feature"], x["value"], x["model_a"], x["model_b"]): x
        for x in r["model_comparison_within_tasks"].to_pylist()
    }
    want = expected_within(o)
    assert set(got) == set(want)
    checked_bd = 0
    for key, (xa, xb, tables) in want.items():
        g = got[key]
        assert (g["x_a"], g["x_b"]) == (xa, xb)
        z, p = proportions_ztest([xa, xb], [g["n_a"], g["n_b"]])
        assert close(g["z"], float(z)) and close(g["p_value"], float(p))
        assert g["n_strata"] == len(tables)
        st_ = StratifiedTable(np.array(tables, dtype=float).transpose(1, 2, 0))
        assert close(g["common_odds_ratio"], st_.oddsratio_pooled)
        lo, hi = st_.oddsratio_pooled_confint()
        assert close(g["odds_ratio_low"], lo) and close(g["odds_ratio_high"], hi)
        null = st_.test_null_odds(correction=False)
        assert close(g["cmh_statistic"], null.statistic)
        assert close(g["cmh_p_value"], null.pvalue, rel=1e-7)
        if len(tables) >= 2:
            eq = st_.test_equal_odds(adjust=False)
            assert close(g["breslow_day"], eq.statistic)
            assert close(g["breslow_day_p_value"], eq.pvalue, rel=1e-7)
            checked_bd += 1
    assert checked_bd > 20
    # Bonferroni over the tests made
    m = len(got)
    for g in got.values():
        assert g["n_tests"] == m
        assert close(g["p_threshold"], 0.05 / m)
        assert g["significant_raw"] == (g["p_value"] < 0.05 / m)
        assert g["significant_within_tasks"] == (g["cmh_p_value"] < 0.05 / m)


def test_derived_two_way_tables_are_plain_counts(case):
    """`ai_values x task_cluster`, `ai_values x model` and `response_type x model` are summed
    from the three-way counts: each published cell is the plain count, users included."""
    o, r = case
    for a, b in [("ai_values", "task_cluster"), ("ai_values", "model"), ("response_type", "model")]:
        cells = o.cells(a, b)
        want = {k: n for k, (n, u) in cells.items() if o.passes(n, u)}
        t = r[f"tables/{a}__{b}"]
        got = dict(
            zip(
                zip(t["row"].to_pylist(), t["col"].to_pylist(), strict=True),
                t["observed"].to_pylist(),
                strict=True,
            )
        )
        assert got == want, (a, b)


def test_value_pairs_count_reframing_and_resistance(case):
    o, r = case
    t = r["value_pairs"].to_pylist()
    assert t, "some pair is significant"
    groups = {
        "n_reframing": {"reframing"},
        "n_resistance": {"mild resistance", "strong resistance"},
    }
    for p in t:
        h, a = p["human_value"], p["ai_value"]
        for col, rts in groups.items():
            hits = [x for x in o.analysed if h in x["human_values"] and a in x["ai_values"]]
            sub = [x for x in hits if x["_rt"] in rts]
            n, users = len(sub), {x["_user"] for x in sub}
            assert p[col] == (n if n == 0 or o.passes(n, users) else None)
        share = None if p["n_resistance"] is None else p["n_resistance"] / p["n_conversations"]
        want = (
            "mirroring"
            if h == a
            else "opposing"
            if share is not None and share >= 0.5
            else "supporting"
        )
        assert p["class"] == want


SHARD_ROWS = make_rows(1500, seed=5)


@settings(max_examples=8, deadline=None)
@given(st.integers(min_value=1, max_value=6), st.randoms(use_true_random=False))
def test_merged_in_any_order(k: int, rnd: random.Random):
    one = Engine(min_conversations=3, min_users=2)
    one.update(to_table(SHARD_ROWS))
    cuts = sorted(rnd.sample(range(1, len(SHARD_ROWS)), k - 1)) if k > 1 else []
    bounds = [0, *cuts, len(SHARD_ROWS)]
    parts = []
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        e = Engine(min_conversations=3, min_users=2)
        e.update(to_table(SHARD_ROWS[lo:hi]))
        parts.append(Engine.from_bytes(e.to_bytes()))
    rnd.shuffle(parts)
    merged = parts[0]
    for p in parts[1:]:
        merged.merge(p)
    a, b = one.result(), merged.result()
    for key in (
        "model_comparison_within_tasks",
        "value_pairs",
        "explicit_by_response_type",
        "tables/ai_values__task_cluster",
        "tables/ai_values__model",
        "tables/response_type__model",
    ):
        assert a[key].equals(b[key]), key
