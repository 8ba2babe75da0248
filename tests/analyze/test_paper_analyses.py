"""The paper's further analyses recover what the synthetic corpus plants: `valuescope synth` then
`valuescope analyze`, and the engine's files are read as any user would read them.

Planted (valuescope.synth): model-c's users write far more creative text, so its raw rate of a
creative value differs while its within-task rate does not; model-b states one value more often
in every task; values are stated explicitly more often in reframing and resistance; users who
state "deception" are met with ethical integrity, harm prevention and honesty, mostly resisted.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from valuescope import synth

N = 300_000
SEED = 18
RESISTED = ["pct_mild_resistance", "pct_strong_resistance"]


def run(*args: str) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "valuescope.cli", *args], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr[-3000:]


@pytest.fixture(scope="module")
def analysis(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("paper")
    corpus, out = tmp / "corpus.parquet", tmp / "analysis"
    run("synth", "--n", str(N), "--seed", str(SEED), "--out", str(corpus), "--no-progress")
    run("analyze", str(corpus), "--out", str(out), "-q")
    return out


def read(analysis: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(analysis / name, keep_default_na=False, na_values=[""])


def flag(x: object) -> bool:
    return str(x).strip().lower() == "true"


def pair_rows(df: pd.DataFrame, item: str, a: str, b: str) -> pd.DataFrame:
    sel = (df["kind"] == "value") & (df["item"] == item)
    pair = ((df["model_a"] == a) & (df["model_b"] == b)) | (
        (df["model_a"] == b) & (df["model_b"] == a)
    )
    return df[sel & pair]


def test_the_stratified_test_separates_confounding_from_a_real_difference(analysis):
    df = read(analysis, "model_comparison_within_tasks.csv")
    for other in ["model-a", "model-b"]:
        row = pair_rows(df, synth.CONFOUNDED_VALUE, "model-c", other)
        assert len(row) == 1, (other, row)
        r = row.iloc[0]
        # raw: model-c's creative-writing users lift its rate; within tasks: no difference
        assert flag(r["significant_raw"]) and not flag(r["significant_within"]), r.to_dict()
        assert r["p_raw"] < r["p_threshold"] <= r["p_cmh"]
        # the common odds ratio is near 1, far from the raw ratio of rates (about 4)
        assert 1 / 1.5 < r["odds_ratio"] < 1.5, r["odds_ratio"]
    value, factors = synth.WITHIN_TASK_FACTORS
    row = pair_rows(df, value, "model-b", "model-a")
    assert len(row) == 1
    r = row.iloc[0]
    assert flag(r["significant_within"]) and r["p_cmh"] < r["p_threshold"], r.to_dict()
    # the common odds ratio points the planted way, with model-b's factor over model-a's
    ratio = factors[1] / factors[0]
    o = r["odds_ratio"] if r["model_a"] == "model-b" else 1 / r["odds_ratio"]
    assert abs(o - ratio) / ratio < 0.25, o
    assert r["n_strata"] >= 2


def test_explicit_values_rise_in_reframing_and_resistance(analysis):
    df = read(analysis, "explicit_by_response_type.csv").set_index("response_type")
    for up in ["reframing", "mild resistance", "strong resistance"]:
        for down in ["strong support", "mild support"]:
            assert df.loc[up, "ci_low"] > df.loc[down, "ci_high"], (up, down)
    # the share is the plain ratio of its counts
    share = 100 * df["n_with_explicit"] / df["n_conversations"]
    assert ((share - df["pct_with_explicit"]).abs() < 1e-6).all()
    values = read(analysis, "explicit_values.csv").set_index("value")
    ratio = values["n_explicit"] / values["n_expressed"]
    assert ((ratio - values["ratio"]).abs() < 1e-9).all()
    # planted in resistance, where values are stated outright: stated more often than the
    # ubiquitous helpfulness
    assert values.loc["ethical boundaries", "ratio"] > values.loc["helpfulness", "ratio"]


def test_the_deception_pairs_are_opposing(analysis):
    df = read(analysis, "value_pairs.csv")
    dec = df[df["human_value"] == "deception"].set_index("ai_value")
    for ai in ["ethical integrity", "harm prevention", "honesty"]:
        assert ai in dec.index, sorted(dec.index)
        r = dec.loc[ai]
        assert r["pattern"] == "opposing", r.to_dict()
        assert r[RESISTED].sum() > 50
        assert r["residual"] > r["threshold"]
    # the planted mirror is mirroring, not opposing
    eff = df[(df["human_value"] == "efficiency") & (df["ai_value"] == "efficiency")]
    assert list(eff["pattern"]) == ["mirroring"]
