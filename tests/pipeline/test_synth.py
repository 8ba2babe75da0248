"""The synthetic corpus: determinism, schema, and calibration against the published figures.

Every figure is counted here with pyarrow/numpy/pandas, independently of the Rust engine, and
compared with the published numbers (or the planted design) within sampling error.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import valuescope
from click.testing import CliRunner
from scipy.stats import norm
from statsmodels.stats.contingency_tables import StratifiedTable, Table
from valuescope import schema, synth
from valuescope.cli.synth import synth_command

N = 400_000
SEED = 20250421
RESPONSE_TYPES = list(schema.RESPONSE_TYPES)
# Bonferroni threshold for the paper's 3,307 tests (4.33).
Z_STAR = norm.isf(0.05 / (2 * 3307))


def read(n: int, seed: int, **kw) -> pa.Table:
    return synth.synth_batches(n, seed, **kw).read_all()


@pytest.fixture(scope="module")
def corpus() -> pa.Table:
    return read(N, SEED, dictionary=False)


@pytest.fixture(scope="module")
def parquet_corpus(tmp_path_factory) -> pa.Table:
    """The corpus as `valuescope synth` writes it, read back from the Parquet file."""
    path = synth.write_corpus(
        tmp_path_factory.mktemp("synth") / "c.parquet", N, SEED, progress=False
    )
    return pq.read_table(path)


def flat(table: pa.Table, column: str) -> pd.DataFrame:
    """One row per (conversation index, value) of a list column."""
    col = table[column].combine_chunks()
    return pd.DataFrame(
        {
            "conv": pc.list_parent_indices(col).to_numpy(),
            "value": pc.list_flatten(col).to_numpy(zero_copy_only=False),
        }
    )


def z(observed: float, p: float, n: int) -> float:
    return (observed - p) / math.sqrt(p * (1 - p) / n)


def adjusted_residuals(cells: pd.DataFrame) -> pd.Series:
    """Haberman residuals of a sparse table (columns row, col, observed), by hand; also sets
    the expected counts in column "expected"."""
    n = cells["observed"].sum()
    r = cells.groupby("row")["observed"].transform("sum")
    c = cells.groupby("col")["observed"].transform("sum")
    e = cells["expected"] = r * c / n
    return (cells["observed"] - e) / np.sqrt(e * (1 - r / n) * (1 - c / n))


# ------------------------------------------------------------------------------------------------
# determinism and schema


def test_same_seed_same_rows_whatever_the_batch_size():
    a = read(50_000, 7, batch_size=131_072)
    b = read(50_000, 7, batch_size=9_999)
    assert b.num_rows == 50_000
    assert a.equals(b.combine_chunks().cast(a.schema))
    c = read(50_000, 8)
    assert not a.equals(c)


def test_plain_and_dictionary_give_the_same_strings():
    d = read(30_000, 11, dictionary=True)
    p = read(30_000, 11, dictionary=False)
    assert pa.types.is_dictionary(d.schema.field("model").type)
    assert d.cast(p.schema).equals(p)


def test_schema_is_the_feature_schema(corpus):
    s = corpus.schema
    assert s.names == [
        "conversation_id",
        "user_id",
        "model",
        "subjective",
        "task",
        "task_cluster",
        "ai_values",
        "ai_values_explicit",
        "human_values",
        "response_type",
    ]
    for name in ["conversation_id", "user_id", "model", "task", "task_cluster", "response_type"]:
        assert s.field(name).type == pa.string(), name
    for name in ["ai_values", "ai_values_explicit", "human_values"]:
        assert s.field(name).type == pa.list_(pa.string()), name
    assert s.field("subjective").type == pa.bool_()
    assert corpus.num_rows == N
    assert pc.count_distinct(corpus["conversation_id"]).as_py() == N
    assert set(pc.unique(corpus["response_type"]).to_pylist()) == set(RESPONSE_TYPES)
    # subjective is true or unknown, never false
    assert pc.sum(pc.invert(corpus["subjective"])).as_py() in (None, 0)
    assert 0.005 < corpus["subjective"].null_count / N < 0.015


def test_lists_hold_each_value_once_and_explicit_is_a_subset(corpus):
    for column in ["ai_values", "human_values"]:
        f = flat(corpus, column)
        assert not f.duplicated().any(), column
    ai = flat(corpus, "ai_values")
    ex = flat(corpus, "ai_values_explicit")
    both = ex.merge(ai, on=["conv", "value"], how="left", indicator=True)
    assert (both["_merge"] == "both").all()
    # each expressed value is explicit at its response type's planted rate
    rt = corpus["response_type"].to_numpy(zero_copy_only=False)
    for r, rate in zip(RESPONSE_TYPES, synth.EXPLICIT_RATES, strict=True):
        n_ai = int((rt[ai["conv"]] == r).sum())
        n_ex = int((rt[ex["conv"]] == r).sum())
        assert abs(z(n_ex / n_ai, rate, n_ai)) < 4.5, (r, n_ex / n_ai)
    # no human values under "no values"
    hv = flat(corpus, "human_values")
    assert not (rt[hv["conv"].unique()] == "no values").any()


def test_write_corpus_streams_row_groups_and_reads_back(tmp_path):
    out = synth.write_corpus(
        tmp_path / "f.parquet", 70_000, seed=5, batch_size=32_768, progress=False
    )
    meta = pq.ParquetFile(out).metadata
    assert meta.num_rows == 70_000 and meta.num_row_groups == 3
    back = pq.read_table(out)
    assert back.schema.field("ai_values").type == pa.list_(pa.string())
    assert back.equals(read(70_000, 5, dictionary=False).cast(back.schema))
    assert not list(tmp_path.glob(".*tmp"))


def test_empty_and_ragged_sizes(tmp_path):
    empty = synth.write_corpus(tmp_path / "e.parquet", 0, progress=False)
    t = pq.read_table(empty)
    assert t.num_rows == 0 and "ai_values" in t.schema.names
    assert [b.num_rows for b in synth.synth_batches(5, 0, batch_size=2)] == [2, 2, 1]
    reader = synth.synth_batches(100_000, 0, batch_size=1000)
    next(iter(reader))
    del reader  # dropping a half-read stream stops the generator thread


def test_cli_writes_the_file(tmp_path):
    out = tmp_path / "c.parquet"
    r = CliRunner().invoke(
        synth_command,
        [
            "--n",
            "5000",
            "--seed",
            "2",
            "--out",
            str(out),
            "--no-progress",
            "--models",
            "alpha,beta",
        ],
    )
    assert r.exit_code == 0, r.output
    assert "5,000 conversations" in r.output
    t = pq.read_table(out)
    assert t.num_rows == 5000
    assert set(pc.unique(t["model"]).to_pylist()) == {"alpha", "beta"}
    bad = CliRunner().invoke(synth_command, ["--n", "10", "--out", str(out), "--models", "a,a"])
    assert bad.exit_code != 0
    assert "--models" in str(bad.exception)


def test_bad_arguments_raise():
    with pytest.raises(ValueError):
        synth.synth_batches(10, 0, models=["a", "b", "c", "d"])
    with pytest.raises(ValueError):
        synth.synth_batches(10, 0, batch_size=0)
    with pytest.raises(ValueError, match="invalid synth spec"):
        valuescope._core.synth_batches('{"ai_values": []}', 10, 0)


# ------------------------------------------------------------------------------------------------
# calibration


def test_ai_value_shares_match_published_pct_convos(corpus):
    counts = flat(corpus, "ai_values")["value"].value_counts()
    published = synth.published_value_frequencies()
    assert len(published) == 3307
    for value, pct in published[:50]:
        got = counts.get(value, 0) / N
        assert abs(z(got, pct / 100, N)) < 4.5, (value, got, pct)
    # the tail too: all 3,307 values occur, and pooled shares by frequency band are right
    assert set(counts.index) >= {v for v, _ in published}
    band = [(v, p) for v, p in published if 0.05 <= p < 0.2]
    want = sum(p for _, p in band) / 100
    got = sum(counts.get(v, 0) for v, _ in band) / N
    assert abs(got - want) / want < 0.02
    mean = sum(p for _, p in published) / 100
    assert abs(counts.sum() / N - mean) < 0.03  # pets add about 0.015


def test_response_types_match_published_shares(corpus):
    got = pd.Series(corpus["response_type"].to_numpy(zero_copy_only=False)).value_counts() / N
    for rt, pct in zip(RESPONSE_TYPES, synth.PUBLISHED_RESPONSE_TYPES, strict=True):
        assert abs(z(got[rt], pct / 100, N)) < 4.5, (rt, got[rt])


def test_models_differ_as_in_the_cross_model_appendix(corpus):
    df = corpus.select(["model", "response_type"]).to_pandas()
    shares = pd.crosstab(df["model"], df["response_type"], normalize="index")
    n_c = int((df["model"] == "model-c").sum())
    assert abs(n_c / N - 0.10) < 0.003
    assert abs(z(shares.loc["model-c", "strong support"], 0.438, n_c)) < 4.5
    assert abs(z(shares.loc["model-c", "strong resistance"], 0.095, n_c)) < 4.5
    assert (
        shares.loc["model-a", "neutral acknowledgment"]
        > shares.loc["model-b", "neutral acknowledgment"] + 0.02
    )


def test_human_values_rate_count_and_top_values(corpus):
    hv = flat(corpus, "human_values")
    per_conv = hv.groupby("conv").size()
    assert abs(len(per_conv) / N - 0.45) < 0.004
    assert abs(per_conv.mean() - 1.48) < 0.02
    shares = hv["value"].value_counts() / N * 100
    assert list(shares.index[:3]) == ["authenticity", "efficiency", "clarity"]
    for value in ["authenticity", "efficiency", "clarity"]:
        target = synth.HUMAN_TARGETS[value]
        assert abs(shares[value] - target) / target < 0.1, (value, shares[value])


def test_mirroring_rates_near_published(corpus):
    hv = flat(corpus, "human_values")
    ai = flat(corpus, "ai_values")
    mirrored = set(hv.merge(ai, on=["conv", "value"])["conv"])
    rt = corpus["response_type"].to_numpy(zero_copy_only=False)
    with_h = pd.DataFrame({"conv": hv["conv"].unique()})
    with_h["rt"] = rt[with_h["conv"]]
    with_h["mirrored"] = with_h["conv"].isin(mirrored)
    rate = with_h.groupby("rt")["mirrored"].agg(["mean", "size"])
    for r, target in zip(RESPONSE_TYPES, synth.MIRRORING, strict=True):
        if r == "no values":
            assert r not in rate.index
            continue
        got, n = rate.loc[r, "mean"], rate.loc[r, "size"]
        assert abs(z(got, target, n)) < 4.5, (r, got, target)


def test_users_are_skewed_and_pets_come_from_one_user(corpus):
    users = pd.Series(corpus["user_id"].to_numpy(zero_copy_only=False)).value_counts()
    top = users.iloc[: max(1, len(users) // 100)].sum() / N
    assert top > 0.15  # the heaviest 1% of users hold a large share
    assert users.median() <= 3  # while most users come once or a few times
    ai = flat(corpus, "ai_values")
    ai["user"] = corpus["user_id"].to_numpy(zero_copy_only=False)[ai["conv"]]
    pets = ai[ai["value"].isin(synth.PET_VALUES)].groupby("value")["user"].agg(["size", "nunique"])
    assert (pets["nunique"] == 1).all()
    assert (pets["size"] >= 15).sum() >= 10


def test_planted_task_associations_are_strong_and_others_rare(corpus):
    ai = flat(corpus, "ai_values")
    ai["col"] = corpus["task_cluster"].to_numpy(zero_copy_only=False)[ai["conv"]]
    cells = ai.groupby(["value", "col"]).size().rename("observed").reset_index()
    cells = cells.rename(columns={"value": "row"})
    cells["r"] = adjusted_residuals(cells)
    res = cells.set_index(["row", "col"])["r"]
    for row, col in [
        ("healthy boundaries", "relationship advice"),
        ("historical accuracy", "controversial historical events"),
        ("human agency", "technology ethics and ai"),
    ]:
        assert res[(row, col)] > 10 * Z_STAR, (row, col, res[(row, col)])
    for _, col, row, _ in synth.CONTEXT_PLANTS:
        if col in {c for c, _, _ in synth.CLUSTERS}:
            assert res[(row, col)] > Z_STAR, (row, col)
    # the same residuals as statsmodels on the dense table
    dense = cells.pivot(index="row", columns="col", values="observed").fillna(0)
    sm = Table(dense.to_numpy(), shift_zeros=False).standardized_resids
    mine = cells.pivot(index="row", columns="col", values="r").reindex_like(dense)
    assert dense.shape[0] >= 3307
    mask = dense.to_numpy() > 0
    np.testing.assert_allclose(mine.to_numpy()[mask], sm[mask], rtol=1e-9)
    # values without a plant are as likely in every cluster: few significant cells among
    # those where the normal approximation holds (expected >= 5; tiny cells are what the
    # privacy thresholds withhold anyway)
    planted = model_linked_values()
    free = cells[~cells["row"].isin(planted) & (cells["expected"] >= 5)]
    assert len(free) > 5000
    assert (free["r"].abs() > Z_STAR).sum() <= 3


def test_planted_human_to_ai_associations(corpus):
    hv = flat(corpus, "human_values").rename(columns={"value": "row"})
    ai = flat(corpus, "ai_values").rename(columns={"value": "col"})
    pairs = hv.merge(ai, on="conv")
    cells = pairs.groupby(["row", "col"]).size().rename("observed").reset_index()
    cells["r"] = adjusted_residuals(cells)
    res = cells.set_index(["row", "col"])["r"]
    assert res[("efficiency", "efficiency")] > 5 * Z_STAR
    for col in ["ethical integrity", "harm prevention", "honesty"]:
        assert res[("deception", col)] > 3 * Z_STAR, col
    # conditional view: deception is almost always answered with one of the three
    dec = set(hv.loc[hv["row"] == "deception", "conv"])
    answered = set(
        ai.loc[ai["col"].isin(["ethical integrity", "harm prevention", "honesty"]), "conv"]
    )
    assert len(dec) > 100 and len(dec & answered) / len(dec) > 0.95


def model_linked_values() -> set[str]:
    """Values whose rate may differ between clusters: planted in a cluster, planted in a response
    type or multiplied per model (a model's task mix links its response types and its factors to
    the clusters)."""
    value, _ = synth.WITHIN_TASK_FACTORS
    return {v for _, _, v, _ in synth.CONTEXT_PLANTS} | {value}


def strata(corpus: pa.Table, value: str, model_a: str, model_b: str) -> list[np.ndarray]:
    """One 2x2 table (model a/b x value present/absent) per task cluster, by plain counting."""
    ai = flat(corpus, "ai_values")
    has = np.zeros(corpus.num_rows, dtype=bool)
    has[ai.loc[ai["value"] == value, "conv"].to_numpy()] = True
    df = pd.DataFrame(
        {
            "model": corpus["model"].to_numpy(zero_copy_only=False),
            "cluster": corpus["task_cluster"].to_numpy(zero_copy_only=False),
            "has": has,
        }
    )
    df = df[df["model"].isin([model_a, model_b])]
    out = []
    for _, g in df.groupby("cluster"):
        t = np.array(
            [
                [((g["model"] == m) & g["has"]).sum(), ((g["model"] == m) & ~g["has"]).sum()]
                for m in (model_a, model_b)
            ],
            dtype=float,
        )
        out.append(t)
    return out


def raw_z(tables: list[np.ndarray]) -> float:
    """Two-proportion z of the pooled table (the raw test, ignoring the clusters)."""
    t = sum(tables)
    n1, n2 = t[0].sum(), t[1].sum()
    p1, p2 = t[0, 0] / n1, t[1, 0] / n2
    p = (t[0, 0] + t[1, 0]) / (n1 + n2)
    return (p1 - p2) / math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))


def test_confounded_and_within_task_model_differences(parquet_corpus):
    """The paper's B.5.3 in miniature: the expressive model's creative-writing users move its raw
    rate of a creative value, not its within-task rate; the other plant holds within tasks."""
    corpus = parquet_corpus
    cluster, share = synth.CONFOUNDED_MIX
    models = corpus["model"].to_numpy(zero_copy_only=False)
    clusters = corpus["task_cluster"].to_numpy(zero_copy_only=False)
    in_c = models == "model-c"
    assert abs(z((clusters[in_c] == cluster).mean(), share, int(in_c.sum()))) < 4.5
    # the overall cluster shares stay the listed ones
    for name, want, _ in synth.CLUSTERS:
        assert abs(z((clusters == name).mean(), want, N)) < 4.5, name
    confounded = strata(corpus, synth.CONFOUNDED_VALUE, "model-c", "model-a")
    assert abs(raw_z(confounded)) > Z_STAR
    st = StratifiedTable(confounded)
    assert st.test_null_odds(correction=False).pvalue > 0.05 / 3307
    assert 0.7 < st.oddsratio_pooled < 1.4
    value, factors = synth.WITHIN_TASK_FACTORS
    within = strata(corpus, value, "model-b", "model-a")
    st = StratifiedTable(within)
    assert st.test_null_odds(correction=False).pvalue < 0.05 / 3307
    want = factors[1] / factors[0]  # a rate ratio; the values are rare, so the odds ratio is near
    assert abs(st.oddsratio_pooled - want) / want < 0.15, st.oddsratio_pooled
    assert st.test_equal_odds().pvalue > 0.001  # the same ratio in every cluster


def test_explicit_share_rises_in_resistance(parquet_corpus):
    corpus = parquet_corpus
    ex_len = pc.list_value_length(corpus["ai_values_explicit"]).to_numpy(zero_copy_only=False)
    ai_len = pc.list_value_length(corpus["ai_values"]).to_numpy(zero_copy_only=False)
    df = pd.DataFrame(
        {
            "rt": corpus["response_type"].to_numpy(zero_copy_only=False),
            "explicit": ex_len > 0,
            "any": ai_len > 0,
        }
    )
    share = df[df["any"]].groupby("rt")["explicit"].mean()
    for resist in ["strong resistance", "mild resistance", "reframing"]:
        for support in ["strong support", "mild support"]:
            assert share[resist] > share[support] + 0.05, (resist, support, share.to_dict())


def test_deception_pairs_are_mostly_resistance(parquet_corpus):
    corpus = parquet_corpus
    hv = flat(corpus, "human_values")
    ai = flat(corpus, "ai_values")
    rt = corpus["response_type"].to_numpy(zero_copy_only=False)
    dec = set(hv.loc[hv["value"] == "deception", "conv"])
    for target in ["ethical integrity", "harm prevention", "honesty"]:
        convs = np.array(sorted(dec & set(ai.loc[ai["value"] == target, "conv"])))
        resisted = np.isin(rt[convs], ["mild resistance", "strong resistance"]).mean()
        assert len(convs) > 50 and resisted > 0.9, (target, len(convs), resisted)


def test_engine_recovers_the_calibration():
    """The engine on a synth corpus: published shares, response types, planted cells, privacy."""
    engine = valuescope.Engine()
    engine.update(synth.synth_batches(N, SEED + 1))
    result = engine.result()
    values = result["ai_values"].to_pandas().set_index("value")
    for value, pct in synth.published_value_frequencies()[:50]:
        got = values.loc[value, "pct_convos"] / 100
        assert abs(z(got, pct / 100, N)) < 4.5, value
    rts = result["response_types"].to_pandas().set_index("response_type")
    for rt, pct in zip(RESPONSE_TYPES, synth.PUBLISHED_RESPONSE_TYPES, strict=True):
        assert abs(z(rts.loc[rt, "pct_all"] / 100, pct / 100, N)) < 4.5
    table = result["tables/ai_values__task_cluster"].to_pandas().set_index(["row", "col"])
    assert table.loc[("healthy boundaries", "relationship advice"), "significant"]
    assert table.loc[("human agency", "technology ethics and ai"), "significant"]
    planted = model_linked_values()
    free = table[~table.index.get_level_values("row").isin(planted) & (table["expected"] >= 5)]
    assert len(free) > 5000 and free["significant"].sum() <= 3
    # pet values: hundreds of conversations, one user each: suppressed by the user threshold
    assert not set(values.index) & set(synth.PET_VALUES)
