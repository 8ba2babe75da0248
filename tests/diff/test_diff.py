"""`valuescope diff`: the pairing of published names, the tests against statsmodels and scipy,
the privacy of one-sided and suppressed names, the warnings, and the CLI's errors."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import click
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from helpers.features import make_rows, to_table
from scipy.stats import norm
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_effectsize, proportions_ztest
from valuescope.analyze import AnalyzeOptions, analyze_files
from valuescope.cli import Group
from valuescope.cli.diff import diff_command
from valuescope.diff import run_diff

#: below the thresholds in B (5 conversations, one user) and absent from A: published nowhere
RARE = "zqx rare diff marker"
#: published in A, suppressed in B: counted as A-only, never paired
SPLIT = "zqx split diff marker"
#: planted in 150 of A's rows and 800 of B's: the change the diff must find
SHIFT = "zqx shifted value"
#: published on both sides: the writers must escape it
PROBE = "<b>bold</b> | pipe & amp"
FILES = {
    "ai_values": "ai_values.csv",
    "human_values": "human_values.csv",
    "ai_values_explicit": "ai_values_explicit.csv",
}


def _analysis(tmp: Path, name: str, rows: list[dict], **opts) -> Path:
    features = tmp / f"{name}.parquet"
    pq.write_table(to_table(rows), features)
    out = tmp / name
    analyze_files([features], out, AnalyzeOptions(progress=False, **opts))
    return out


def _plant(rows: list[dict], value: str, idx: range, users: int, tag: str) -> None:
    for k, i in enumerate(idx):
        r = rows[i]
        r.update(subjective=True, user_id=f"{tag}-{k % users}")
        r["ai_values"] = [*(r["ai_values"] or []), value]
        r["human_values"] = [*(r["human_values"] or []), value]


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("diff")
    a, b = make_rows(3000, seed=11), make_rows(3200, seed=12)
    _plant(a, SPLIT, range(0, 60), 20, "split")
    _plant(b, SPLIT, range(0, 5), 1, "split")
    _plant(b, RARE, range(10, 15), 1, "rare")
    _plant(a, SHIFT, range(100, 250), 30, "shift")
    _plant(b, SHIFT, range(100, 900), 30, "shift")
    _plant(a, PROBE, range(600, 700), 20, "probe")
    _plant(b, PROBE, range(600, 1000), 20, "probe")
    return _analysis(tmp, "a", a), _analysis(tmp, "b", b)


@pytest.fixture(scope="module")
def result(pair, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    d = run_diff(*pair, out)
    with (out / "diff.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return d, out, rows


def _published(d: Path) -> dict[str, dict[str, int]]:
    """feature -> name -> conversations, read with plain csv from the analysis files."""
    out = {}
    for feature, name in FILES.items():
        with (d / name).open(newline="", encoding="utf-8") as fh:
            out[feature] = {r["value"]: int(r["n_conversations"]) for r in csv.DictReader(fh)}
    with (d / "response_types.csv").open(newline="", encoding="utf-8") as fh:
        out["response_type"] = {
            r["response_type"]: int(r["n_conversations"]) for r in csv.DictReader(fh)
        }
    return out


def _n(d: Path) -> int:
    return json.loads((d / "summary.json").read_text())["n_conversations"]


def test_rows_are_exactly_the_names_published_on_both_sides(pair, result):
    _, _, rows = result
    pa, pb = _published(pair[0]), _published(pair[1])
    want = {(f, v) for f in pa for v in pa[f].keys() & pb[f].keys()}
    got = [(r["feature"], r["name"]) for r in rows]
    assert len(got) == len(set(got)) and set(got) == want
    one_sided = {(f, v) for f in pa for v in pa[f].keys() ^ pb[f].keys()}
    assert one_sided and not one_sided & set(got)  # the fixture has some; none gets a row
    na, nb = _n(pair[0]), _n(pair[1])
    for r in rows:
        f, v = r["feature"], r["name"]
        assert (int(r["n_a"]), int(r["n_b"])) == (pa[f][v], pb[f][v])
        assert (int(r["n_conversations_a"]), int(r["n_conversations_b"])) == (na, nb)
        assert float(r["pct_a"]) == pytest.approx(100 * pa[f][v] / na, rel=1e-12)
        assert float(r["diff_pp"]) == pytest.approx(
            100 * pb[f][v] / nb - 100 * pa[f][v] / na, rel=1e-9, abs=1e-12
        )


def test_z_p_and_h_equal_statsmodels(result):
    _, _, rows = result
    assert len(rows) > 10
    for r in rows:
        counts = [int(r["n_b"]), int(r["n_a"])]
        nobs = [int(r["n_conversations_b"]), int(r["n_conversations_a"])]
        z, p = proportions_ztest(counts, nobs)
        assert float(r["z"]) == pytest.approx(z, rel=1e-9, abs=1e-12)
        assert float(r["p_value"]) == pytest.approx(p, rel=1e-9, abs=1e-300)
        h = proportion_effectsize(counts[0] / nobs[0], counts[1] / nobs[1])
        assert float(r["cohens_h"]) == pytest.approx(h, rel=1e-9, abs=1e-12)


def test_bonferroni_threshold_equals_scipy(result):
    d, _, rows = result
    m = len(rows)
    want = norm.isf(0.05 / (2 * m))
    assert d.threshold == pytest.approx(want, rel=1e-12)
    assert {float(r["threshold"]) for r in rows} == {d.threshold}
    reject = multipletests([float(r["p_value"]) for r in rows], 0.05, "bonferroni")[0]
    assert [r["significant"] == "true" for r in rows] == list(reject)


def test_sorted_by_effect_and_the_planted_shift_leads(result):
    _, _, rows = result
    effects = [abs(float(r["diff_pp"])) for r in rows]
    assert effects == sorted(effects, reverse=True)
    shifted = [r for r in rows if r["name"] == SHIFT]
    assert {r["feature"] for r in shifted} == {"ai_values", "human_values"}
    for r in shifted:
        assert r["significant"] == "true" and float(r["diff_pp"]) > 0
    assert rows[0]["name"] == SHIFT


def test_suppressed_and_one_sided_names(pair, result):
    d, out, rows = result
    for path in out.rglob("*"):
        assert RARE not in path.read_text(encoding="utf-8"), path
    assert SPLIT not in {r["name"] for r in rows}
    assert SPLIT in _published(pair[0])["ai_values"]
    assert SPLIT not in _published(pair[1])["ai_values"]
    md = (out / "diff.md").read_text(encoding="utf-8")
    lines = [ln for ln in md.splitlines() if SPLIT in ln]  # in A's own listings only
    assert [ln.split(":", 1)[0] for ln in lines] == ["- AI values", "- human values"]
    for line in lines:
        assert line.count(SPLIT) == 1
        assert SPLIT in line.split("In A only: ", 1)[1].split("; In B only", 1)[0]
    a_only, b_only = d.only["ai_values"]
    pa, pb = _published(pair[0]), _published(pair[1])
    assert a_only == sorted(
        pa["ai_values"].keys() - pb["ai_values"].keys(), key=lambda v: (-pa["ai_values"][v], v)
    )
    assert set(b_only) == pb["ai_values"].keys() - pa["ai_values"].keys()


def test_reports_show_both_ns_and_the_threshold(pair, result):
    d, out, _ = result
    md = (out / "diff.md").read_text(encoding="utf-8")
    page = (out / "diff.html").read_text(encoding="utf-8")
    for text in (md, page):
        assert f"{_n(pair[0]):,} conversations" in text
        assert f"{_n(pair[1]):,} conversations" in text
        assert f"&gt; {d.threshold:.4f}" in text  # |z| > threshold, escaped in both
        assert "Warning" not in text  # same thresholds, neither small
        assert SHIFT in text
    assert "<script" not in page.lower() and "http" not in page


def test_names_are_escaped(result):
    _, out, rows = result
    assert PROBE in {r["name"] for r in rows}  # csv: the name itself
    page = (out / "diff.html").read_text(encoding="utf-8")
    md = (out / "diff.md").read_text(encoding="utf-8")
    assert "<b>" not in page and "&lt;b&gt;bold&lt;/b&gt; | pipe &amp; amp" in page
    assert "<b>" not in md and "&lt;b&gt;bold&lt;/b&gt; \\| pipe &amp; amp" in md


def test_warns_on_different_thresholds_and_a_small_analysis(pair, tmp_path):
    rows = make_rows(150, seed=3)
    small = _analysis(tmp_path, "small", rows, min_conversations=5, min_users=3)
    run_diff(pair[0], small, tmp_path / "out")
    md = (tmp_path / "out" / "diff.md").read_text(encoding="utf-8")
    assert "different privacy thresholds" in md
    assert "analysis B is small (" in md and "analysis A is small" not in md


def _cli() -> click.Group:
    group = Group()
    group.add_command(diff_command)
    return group


def test_cli_writes_the_files(pair, tmp_path):
    res = CliRunner().invoke(_cli(), ["diff", str(pair[0]), str(pair[1]), "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "names compared" in res.output
    assert {p.name for p in tmp_path.iterdir()} == {"diff.csv", "diff.md", "diff.html"}


def _damage(src: Path, tmp: Path, how: str) -> Path:
    d = tmp / how
    shutil.copytree(src, d)
    if how == "no-summary":
        (d / "summary.json").unlink()
    elif how == "bad-json":
        (d / "summary.json").write_text("{not json")
    elif how == "no-values":
        (d / "ai_values.csv").unlink()
    elif how == "bad-columns":
        (d / "human_values.csv").write_text("what,ever\n1,2\n")
    elif how == "bad-count":
        text = (d / "response_types.csv").read_text().splitlines()
        (d / "response_types.csv").write_text(text[0] + "\n" + text[1].replace(",", ",x", 1))
    elif how == "no-conversations":
        s = json.loads((d / "summary.json").read_text())
        s["n_conversations"] = 0
        (d / "summary.json").write_text(json.dumps(s))
    return d


@pytest.mark.parametrize(
    ("how", "says"),
    [
        ("missing", "no such analysis directory"),
        ("no-summary", "not an analysis directory (no summary.json"),
        ("bad-json", "damaged analysis file"),
        ("no-values", "no ai_values.csv"),
        ("bad-columns", "damaged analysis file (no"),
        ("bad-count", "damaged analysis file (line 2)"),
        ("no-conversations", "no analysed conversations"),
    ],
)
def test_cli_errors_are_one_line(pair, tmp_path, how, says):
    bad = tmp_path / "nothing-here" if how == "missing" else _damage(pair[1], tmp_path, how)
    res = CliRunner().invoke(_cli(), ["diff", str(pair[0]), str(bad), "--out", str(tmp_path / "o")])
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("valuescope: error: "), res.output
    assert says in lines[0] and "Traceback" not in res.output
    assert not (tmp_path / "o").exists()


def test_cli_rejects_a_bad_alpha(pair, tmp_path):
    res = CliRunner().invoke(_cli(), ["diff", str(pair[0]), str(pair[1]), "--alpha", "2"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "--alpha" in res.output


def test_identical_analyses_differ_nowhere(pair, tmp_path):
    d = run_diff(pair[0], pair[0], tmp_path)
    assert d.rows and d.n_significant == 0
    assert all(r.z == 0 and r.p_value == 1 and r.diff_pp == 0 for r in d.rows)
    assert math.isfinite(d.threshold)


def test_explicit_values_are_compared_only_where_both_sides_have_them(pair, tmp_path):
    d = run_diff(*pair, tmp_path / "both")
    assert any(r.feature == "ai_values_explicit" for r in d.rows)
    # an analysis written before explicit values were counted: the rest is still compared
    old = tmp_path / "old"
    shutil.copytree(pair[0], old)
    (old / "ai_values_explicit.csv").unlink()
    d = run_diff(old, pair[1], tmp_path / "out")
    features = {r.feature for r in d.rows}
    assert "ai_values_explicit" not in features and "ai_values_explicit" not in d.only
    assert {"ai_values", "human_values", "response_type"} <= features
