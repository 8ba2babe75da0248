"""The report files: sections, privacy, escaping, offline HTML, optional inputs, CLI."""

from __future__ import annotations

import csv
import json
import re
import shutil
from html import escape as html_escape
from pathlib import Path

import click
import pytest
import valuescope
from click.testing import CliRunner
from helpers.features import make_rows
from helpers.report import (
    COMMON_MARKER,
    DOLLAR_PROBE,
    ESCAPE_PROBE,
    RARE_MARKER,
    build_analysis,
    external_urls,
)
from valuescope.cli import Group
from valuescope.cli.report import report_command
from valuescope.report import TITLES, write_report
from valuescope.report.model import CREDIT_URLS
from valuescope.report.text import num

# the published tree as shipped in the package (CC BY 4.0, see valuescope/data/NOTICE.md)
REFERENCE = Path(valuescope.__file__).parent / "data" / "values_tree.csv"


@pytest.fixture(scope="module")
def report(analysis: Path) -> tuple[str, str]:
    html_path, md_path = write_report(analysis)
    assert (html_path, md_path) == (analysis / "report.html", analysis / "report.md")
    return html_path.read_text(encoding="utf-8"), md_path.read_text(encoding="utf-8")


def h2(html: str) -> list[str]:
    return re.findall(r"<h2>(.*?)</h2>", html)


def test_every_section_in_both_files(report):
    html, md = report
    assert h2(html) == list(TITLES.values())
    assert re.findall(r"^## (.*)$", md, re.M) == list(TITLES.values())


def test_figures_inline_and_file_is_small(report, analysis):
    html, _ = report
    n_svg = html.count("<svg")
    assert n_svg >= 10, n_svg  # every section with data has its figure
    assert "<?xml" not in html and "<!DOCTYPE svg" not in html  # SVG prologues stripped
    assert "<script" not in html.lower()
    assert (analysis / "report.html").stat().st_size < 2_000_000


def test_no_external_urls(report):
    html, _ = report
    urls = external_urls(html)
    assert set(urls) <= set(CREDIT_URLS.values()), urls
    # the only links are the credits in the Method section; nothing is loaded from anywhere
    assert not re.search(r"""src\s*=\s*["']?https?:""", html, re.I)
    assert "<link" not in html.lower()


def test_external_url_check_can_fail():
    assert external_urls('<img src="https://example.com/x.png">') == ["https://example.com/x.png"]
    assert external_urls("<style>@import 'http://x/y.css';</style>") == ["http://x/y.css"]
    assert external_urls('<svg xmlns="http://www.w3.org/2000/svg">') == []


def test_rare_marker_in_neither_file(report, analysis):
    html, md = report
    # the check can fail: the common marker, above the thresholds, is reported
    assert COMMON_MARKER in html and COMMON_MARKER in md
    for text in (html, md):
        assert RARE_MARKER not in text.lower()
        assert "zqx rare" not in text.lower()  # not even truncated in an axis label
    # and nowhere else in the analysis directory either
    for f in analysis.rglob("*"):
        if f.is_file():
            assert RARE_MARKER not in f.read_text(encoding="utf-8", errors="replace").lower(), f


def test_values_are_escaped(report):
    html, md = report
    assert ESCAPE_PROBE not in html and "<b>bold</b>" not in html
    assert html_escape(ESCAPE_PROBE) in html
    assert "<b>" not in md
    assert r"&lt;b&gt;bold&lt;/b&gt; \| pipe & amp" in md
    # every Markdown table row keeps its column count despite the pipe in the value
    for block in re.findall(r"(?:^\|.*\|\n)+", md, re.M):
        lines = block.strip().split("\n")
        counts = {len(re.findall(r"(?<!\\)\|", line)) for line in lines}
        assert len(counts) == 1, lines


def test_dollars_and_other_scripts_are_literal(report):
    html, _ = report
    # an axis label in an SVG figure shows the value as written, not typeset as maths
    assert f">{DOLLAR_PROBE}</text>" in html


def test_numbers_match_the_analysis(report, analysis):
    html, md = report
    s = json.loads((analysis / "summary.json").read_text())
    assert f"{s['n_conversations']:,}" in html
    with (analysis / "ai_values.csv").open() as fh:
        top = next(csv.DictReader(fh))
    assert f"{top['value']} ({float(top['pct_convos']):.1f}%)" in md
    assert "Bonferroni" in md and "m = " in md  # threshold and test count stated
    assert "CC BY 4.0" in html and "Huang et al." in md


def test_optional_sections_say_not_computed(report):
    html, md = report
    for title in ("Taxonomy", "Reference comparison"):
        section = md.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]
        assert section.strip().startswith("Not computed"), section


def test_taxonomy_and_reference_rendered_when_present(analysis, tmp_path):
    d = tmp_path / "an"
    shutil.copytree(analysis, d)
    (d / "taxonomy").mkdir()
    shutil.copy(REFERENCE, d / "taxonomy" / "values_tree.csv")
    (d / "taxonomy" / "reference_comparison.csv").write_text(
        "level,name,pct_reference,pct_observed\n"
        "3,Practical values,31.4,35.0\n3,Epistemic values,22.2,20.0\n"
        "3,Social values,21.4,19.5\n3,Protective values,13.9,14.5\n3,Personal values,11.1,11.0\n"
    )
    (d / "taxonomy" / "taxonomy.json").write_text(
        '{"n_values_suppressed": 732, "levels": [266, 26, 5], "embedder": "test-embedder", '
        '"weighted": false, "n_task_clusters": 40, "n_task_clusters_folded": 3}'
    )
    write_report(d)
    md = (d / "report.md").read_text()
    html = (d / "report.html").read_text()
    assert "test-embedder" in md and "266/26/5" in md
    assert "| task clusters folded into a neighbour | 3 |" in md
    tax = md.split("## Taxonomy\n", 1)[1].split("\n## ", 1)[0]
    assert "Not computed" not in tax
    assert "Practical values" in tax and "266 clusters at level 1" in tax
    ref = md.split("## Reference comparison\n", 1)[1].split("\n## ", 1)[0]
    assert "Not computed" not in ref and "+3.60" in ref
    assert html.count("<svg") >= 12


def test_empty_analysis(tmp_path):
    out = build_analysis(tmp_path, rows=[])
    html_path, md_path = write_report(out)
    html = html_path.read_text()
    assert h2(html) == list(TITLES.values())
    assert "Not computed" in md_path.read_text()


def _cli() -> click.Group:
    group = Group()
    group.add_command(report_command)
    return group


def test_cli(analysis, tmp_path):
    d = tmp_path / "an"
    shutil.copytree(analysis, d)
    (d / "report.html").unlink(missing_ok=True)  # another test may have written one
    res = CliRunner().invoke(_cli(), ["report", str(d)])
    assert res.exit_code == 0, res.output
    assert (d / "report.html").is_file() and (d / "report.md").is_file()
    assert not list(d.glob(".report*.tmp"))  # atomic writes leave no temporaries


def test_cli_not_an_analysis(tmp_path):
    res = CliRunner().invoke(_cli(), ["report", str(tmp_path)])
    assert res.exit_code == 2
    assert "not an analysis directory" in res.output
    assert "Traceback" not in res.output


def test_reference_with_one_cluster_and_bad_columns(analysis, tmp_path):
    d = tmp_path / "an"
    shutil.copytree(analysis, d)
    (d / "taxonomy").mkdir()
    ref = d / "taxonomy" / "reference_comparison.csv"
    ref.write_text("level,name,pct_reference,pct_observed\n3,Practical values,31.4,35.0\n")
    write_report(d)
    assert "+3.60" in (d / "report.md").read_text()
    ref.write_text(  # the columns `valuescope taxonomy --reference` writes
        "level,cluster_id,name,parent_cluster_id,published_pct,user_pct,difference\n"
        "3,c1,Practical values,,31.4,30.0,-1.4\n3,c2,Social values,,21.4,22.4,1.0\n"
    )
    write_report(d)
    md = (d / "report.md").read_text()
    assert "-1.40" in md and "+1.00" in md
    ref.write_text("cluster,share\nPractical values,31.4\n")
    write_report(d)
    md = (d / "report.md").read_text()
    assert "lacks the expected columns" in md


def test_same_analysis_same_bytes(analysis, tmp_path):
    d = tmp_path / "an"
    shutil.copytree(analysis, d)
    first = [p.read_bytes() for p in write_report(d)]
    second = [p.read_bytes() for p in write_report(d)]
    assert first == second  # no dates or random ids: reports can be diffed and cached


def test_a_single_task_cluster_leaves_out_its_heatmap(tmp_path):
    """With one task cluster the values x task table has one column and no residual is defined:
    the heatmap falls back to human x AI values instead of failing on an empty matrix."""
    rows = make_rows(3000, seed=4)
    for r in rows:
        r["task_cluster"] = r["task"] = "everyday advice"
    html_path, md_path = write_report(build_analysis(tmp_path, rows=rows))
    assert h2(html_path.read_text()) == list(TITLES.values())
    assoc = md_path.read_text().split("## Associations", 1)[1].split("\n## ", 1)[0]
    assert "strongest cells of human_values__ai_values" in assoc


@pytest.mark.parametrize(
    "name", ["summary.json", "ai_values.csv", "tables/ai_values__model.csv",
             "tables/ai_values__model.json"]
)  # fmt: skip
def test_a_damaged_analysis_file_is_one_line_naming_it(analysis, tmp_path, name):
    d = tmp_path / "an"
    shutil.copytree(analysis, d)
    damaged = d / name
    data = damaged.read_bytes()
    damaged.write_bytes(data[: len(data) // 2] + b'\n"unterminated')  # cut off mid-write
    res = CliRunner().invoke(_cli(), ["report", str(d)])
    assert res.exit_code == 2, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and str(damaged) in lines[0], res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)


def test_model_differences_are_judged_by_the_engine(analysis, tmp_path):
    """The report shows the engine's threshold and verdict from model_comparison.csv, not a
    threshold of its own: a file whose verdicts and threshold were changed shows the change."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    d = tmp_path / "judged"
    shutil.copytree(analysis, d)
    t = pacsv.read_csv(d / "model_comparison.csv")
    assert {"threshold", "significant"} <= set(t.column_names)
    assert t.num_rows > 0
    t = t.set_column(t.column_names.index("threshold"), "threshold", pa.array([9.87] * t.num_rows))
    flags = pa.array([True] * t.num_rows)
    t = t.set_column(t.column_names.index("significant"), "significant", flags)
    pacsv.write_csv(t, d / "model_comparison.csv")
    _html, md = write_report(d)
    text = Path(md).read_text()
    n_z = sum(1 for z in t["z"].to_pylist() if z is not None)
    assert "9.87 (not significant, Bonferroni over" in text  # Markdown escapes the |z| <=
    said = f"{num(n_z)} of {num(t.num_rows)} model-to-model differences are significant at"
    assert said in text and "&gt; 9.87 (alpha" in text


def test_an_older_analysis_without_the_verdict_gets_the_engines_threshold(analysis, tmp_path):
    """An analysis written before model_comparison.csv carried the verdict: the report computes
    the threshold with the engine's function, which stays exact for an alpha/2m so small that
    1 - alpha/2m is 1 in floating point (where the textbook formula has no answer)."""
    import pyarrow.csv as pacsv
    from scipy.stats import norm

    d = tmp_path / "older"
    shutil.copytree(analysis, d)
    t = pacsv.read_csv(d / "model_comparison.csv")
    t = t.drop_columns([c for c in ("threshold", "significant") if c in t.column_names])
    pacsv.write_csv(t, d / "model_comparison.csv")
    summary = json.loads((d / "summary.json").read_text())
    summary["thresholds"]["alpha"] = alpha = 1e-15
    (d / "summary.json").write_text(json.dumps(summary))
    m = t.num_rows
    assert 1 - alpha / (2 * m) == 1.0  # beyond the textbook formula
    _html, md = write_report(d)
    expected = norm.isf(alpha / (2 * m))
    assert f"{expected:.2f} (not significant, Bonferroni over" in Path(md).read_text()
