"""The paper's further analyses on the synthetic corpus, which plants each of them: a model whose
raw difference is its users' task mix and one whose difference holds within tasks (B.5.3),
explicit values rising in resistance (B.6), an opposing value pair; values to watch without a
privacy leak; `valuescope diff`."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from conftest import to_table
from statsmodels.stats.proportion import proportion_confint, proportions_ztest
from valuescope.analyze import AnalyzeOptions, analyze_files
from valuescope.cli import main
from valuescope.findings.explicit import wilson
from valuescope.report import write_report
from valuescope.synth import write_corpus


@pytest.fixture(scope="module")
def synth_analysis(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("synth")
    features = tmp / "features.parquet"
    write_corpus(features, 120_000, seed=4, progress=False)
    out = tmp / "analysis"
    analyze_files([features], out, AnalyzeOptions(progress=False))
    return out


def read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def row(rows, **want):
    found = [r for r in rows if all(r[k] == v for k, v in want.items())]
    assert len(found) == 1, want
    return found[0]


def test_stratified_test_separates_confounded_from_real_differences(synth_analysis: Path):
    w = read(synth_analysis / "model_comparison_within_tasks.csv")
    # model-c's users write more fiction: its raw rate of the cluster's value differs...
    confounded = row(w, value="creative freedom", model_a="model-a", model_b="model-c")
    assert confounded["significant_raw"] == "true"
    # ...but not within task clusters
    assert confounded["significant_within_tasks"] == "false"
    assert confounded["verdict"] == "explained by task mix"
    # model-b's own value: different raw and within every task
    real = row(w, value="intellectual curiosity", model_a="model-a", model_b="model-b")
    assert real["significant_raw"] == "true"
    assert real["significant_within_tasks"] == "true"
    assert real["verdict"] == "holds within tasks"
    assert float(real["common_odds_ratio"]) < 1  # model-a (first) expresses it less
    # no model has the planted value of another
    other = row(w, value="intellectual curiosity", model_a="model-a", model_b="model-c")
    assert other["significant_within_tasks"] == "false"


def test_explicit_values_rise_in_resistance(synth_analysis: Path):
    by_rt = {
        r["response_type"]: float(r["pct_with_explicit"])
        for r in read(synth_analysis / "explicit_by_response_type.csv")
    }
    assert by_rt["strong resistance"] > by_rt["strong support"] + 20
    assert by_rt["mild resistance"] > by_rt["mild support"] + 20
    assert by_rt["reframing"] > by_rt["neutral acknowledgment"] + 10
    rows = read(synth_analysis / "explicit_values.csv")
    assert rows
    for r in rows[:50]:
        x, n = int(r["n_explicit"]), int(r["n_expressed"])
        lo, hi = proportion_confint(x, n, alpha=0.05, method="wilson")
        assert math.isclose(float(r["ratio_low"]), lo, rel_tol=1e-9, abs_tol=1e-12)
        assert math.isclose(float(r["ratio_high"]), hi, rel_tol=1e-9, abs_tol=1e-12)
    lows = [float(r["ratio_low"]) for r in rows]
    assert lows == sorted(lows, reverse=True)


def test_opposing_pair_is_recovered(synth_analysis: Path):
    pairs = read(synth_analysis / "value_pairs.csv")
    for ai in ("honesty", "harm prevention", "ethical integrity"):
        p = row(pairs, human_value="deception", ai_value=ai)
        assert p["class"] == "opposing"
        assert float(p["pct_resistance"]) >= 50
    mirrored = row(pairs, human_value="efficiency", ai_value="efficiency")
    assert mirrored["class"] == "mirroring"
    # only the planted pair opposes: the corpus plants no other resisted human value
    assert {p["human_value"] for p in pairs if p["class"] == "opposing"} == {"deception"}


def test_report_shows_the_new_sections(synth_analysis: Path):
    html, md = write_report(synth_analysis)
    text = md.read_text("utf-8")
    for heading in (
        "Values stated outright",
        "Value pairs: mirroring, supporting, opposing",
        "Values to watch",
        "explained by the models' task mix",
    ):
        assert heading in text, heading
    assert "creative freedom" in text
    watch = read(synth_analysis / "values_to_watch.csv")
    deception = [r for r in watch if r["watched_value"] == "deception" and r["side"] == "human"]
    assert any(r["category"] == "strong resistance" for r in deception)


MARKER = "zq planted rare value"


def test_watch_list_never_names_a_rare_value(tmp_path: Path):
    """A rare AI value planted in the conversations of a watched value, in its task, appears in
    no output file, whatever the watch list says."""
    rows = []
    for i in range(600):
        watched = i % 3 == 0
        rows.append(
            {
                "conversation_id": f"c{i}",
                "user_id": f"u{i % 60}",
                "model": ["m1", "m2"][i % 2],
                "subjective": True,
                "task": "jailbreak attempts" if watched else "coding help",
                "task_cluster": "jailbreak attempts" if watched else "coding help",
                "ai_values": (["harm prevention", "honesty"] if watched else ["clarity"])
                + ([MARKER] if watched and i < 30 else []),  # 10 conversations, below 15
                "ai_values_explicit": ["harm prevention"] if watched else None,
                "human_values": ["deception"] if watched else ["efficiency"],
                "response_type": "strong resistance" if watched else "strong support",
            }
        )
    features = tmp_path / "f.parquet"
    pq.write_table(to_table(rows), features)
    watch = tmp_path / "watch.txt"
    watch.write_text(f"# ours\ndeception\n{MARKER}\nharm prevention\n", "utf-8")
    out = tmp_path / "analysis"
    res = CliRunner().invoke(
        main, ["analyze", str(features), "--out", str(out), "-q", "--watch", str(watch)]
    )
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(main, ["report", str(out)])
    assert res.exit_code == 0, res.output
    watched = read(out / "values_to_watch.csv")
    assert {r["watched_value"] for r in watched} == {"deception", "harm prevention"}
    assert any(r["category"] == "jailbreak attempts" for r in watched)
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) > 20
    for p in files:
        assert MARKER.encode() not in p.read_bytes(), p


def test_diff_pairs_published_values(tmp_path: Path, synth_analysis: Path):
    other = tmp_path / "other"
    features = tmp_path / "f.parquet"
    write_corpus(features, 60_000, seed=9, progress=False, models=["model-x", "model-y"])
    analyze_files([features], other, AnalyzeOptions(progress=False))
    out = tmp_path / "diff"
    res = CliRunner().invoke(main, ["diff", str(synth_analysis), str(other), "--out", str(out)])
    assert res.exit_code == 0, res.output
    rows = read(out / "diff.csv")
    assert (out / "diff.html").is_file() and (out / "diff.md").is_file()
    a = {r["value"]: int(r["n_conversations"]) for r in read(synth_analysis / "ai_values.csv")}
    b = {r["value"]: int(r["n_conversations"]) for r in read(other / "ai_values.csv")}
    ai_rows = [r for r in rows if r["feature"] == "ai_values"]
    assert {r["value"] for r in ai_rows} == set(a) & set(b)
    m = sum(r["p_value"] != "" for r in rows)
    hs = [abs(float(r["cohens_h"])) for r in rows]
    assert hs == sorted(hs, reverse=True)
    for r in rows[:200]:
        z, p = proportions_ztest(
            [int(r["n_a"]), int(r["n_b"])], [int(r["total_a"]), int(r["total_b"])]
        )
        assert math.isclose(float(r["z"]), z, rel_tol=1e-9)
        assert math.isclose(float(r["p_value"]), p, rel_tol=1e-6, abs_tol=1e-300)
        assert (r["significant"] == "true") == (float(r["p_value"]) < 0.05 / m)
    only_a = set(a) - set(b)
    assert only_a, "the corpora differ in their published values"
    html = (out / "diff.html").read_text("utf-8")
    for v in list(only_a)[:50]:
        assert f">{v}<" not in html


def test_wilson_matches_statsmodels():
    for x, n in [(0, 10), (3, 10), (10, 10), (120, 1000), (1, 100000)]:
        lo, hi = proportion_confint(x, n, alpha=0.05, method="wilson")
        got = wilson(x, n)
        assert math.isclose(got[0], lo, rel_tol=1e-9, abs_tol=1e-15)
        assert math.isclose(got[1], hi, rel_tol=1e-9, abs_tol=1e-15)
